//! `type = "exec"` checks: a program run as a supervisor runs a job, with placeholders
//! only as whole arguments and a cleared environment.

use std::collections::HashSet;

use crate::config::checks::CheckKind;
use crate::config::diagnostics::KeyPath;
use crate::config::spec::{ExecCheckSpec, VantageSpec};
use crate::config::validate::Validator;

/// An `exec` check: a program run as a supervisor would run it (its own process
/// group, killed whole on timeout, a cleared environment).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ExecCheck {
    /// Program and arguments. An argument that is exactly `{address}` or `{endpoint}`
    /// is replaced by the endpoint's address or `pool/name`; nothing is spliced into a
    /// larger argument (the validator refuses that).
    pub command: Vec<String>,
    /// Names of variables passed through from failoverd's environment (the child's
    /// environment is otherwise cleared but for `PATH`, `LANG` and `FAILOVERD_*`).
    pub env: Vec<String>,
    /// Port passed in `FAILOVERD_PORT`, if the check names one.
    pub port: Option<u16>,
}

impl Validator<'_> {
    /// An `exec` check.
    pub(in crate::config) fn exec_check(
        &mut self,
        spec: &ExecCheckSpec,
        port: Option<u16>,
        path: &KeyPath,
    ) -> CheckKind {
        let command = spec.command.clone().unwrap_or_default();
        if command.is_empty() || command[0].is_empty() {
            self.error(
                path.key("command"),
                "exec checks need a command (program and arguments)",
            );
        }
        self.exec_command(&command, &path.key("command"));
        let env = spec.env.clone().unwrap_or_default();
        self.exec_env(&env, &path.key("env"));
        CheckKind::Exec(ExecCheck { command, env, port })
    }

    /// An exec check's placeholders stand for whole arguments: never spliced into a
    /// larger one (a shell string), never the program.
    pub(in crate::config) fn exec_command(&mut self, command: &[String], path: &KeyPath) {
        for (i, arg) in command.iter().enumerate() {
            for (placeholder, variable) in EXEC_PLACEHOLDERS {
                if i == 0 && arg == placeholder {
                    self.error(
                        path.index(i),
                        format!("the program cannot be {placeholder}; name the program, and give {placeholder} as an argument of its own"),
                    );
                } else if arg.contains(placeholder) && arg != placeholder {
                    self.error(
                        path.index(i),
                        format!(
                            "{arg:?} splices {placeholder} into a larger argument, where an address could \
                             become shell syntax or an option; give {placeholder} as an argument of its own, \
                             or in a shell script use \"${variable}\" (set for every exec check)"
                        ),
                    );
                }
            }
        }
    }

    /// An exec check's `env`: names of variables passed through.
    pub(in crate::config) fn exec_env(&mut self, names: &[String], path: &KeyPath) {
        let mut seen = HashSet::new();
        for (i, name) in names.iter().enumerate() {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.error(
                    path.index(i),
                    format!("{name:?} is not a variable name (letters, digits and '_', not starting with a digit)"),
                );
            } else if EXEC_SET_VARIABLES.contains(&name.as_str()) {
                self.error(
                    path.index(i),
                    format!("{name} is set by failoverd for every exec check; remove it from env"),
                );
            } else if name == "PATH" || name == "LANG" {
                self.warning(
                    path.index(i),
                    format!("{name} is always passed; remove it from env"),
                );
            } else if !seen.insert(name.as_str()) {
                self.warning(path.index(i), format!("{name} is listed twice"));
            }
        }
    }

    /// Warns where an exec check's `env` passes a vantage point's secret to the program.
    pub(in crate::config) fn exec_env_secrets(&mut self, vantages: &[(String, VantageSpec)]) {
        let mut warnings = Vec::new();
        for (check, spec) in self.checks.iter().map(|c| (&c.name, &c.kind)) {
            let CheckKind::Exec(exec) = spec else {
                continue;
            };
            for (i, name) in exec.env.iter().enumerate() {
                for (vantage, v) in vantages {
                    if v.secret_env.as_deref() == Some(name.as_str()) {
                        warnings.push((
                            KeyPath::root().key("checks").key(check).key("env").index(i),
                            format!("{name} holds vantage point {vantage}'s secret (secret_env); the check's program would get it"),
                        ));
                    }
                }
            }
        }
        for (path, message) in warnings {
            self.warning(path, message);
        }
    }
}

/// Placeholders an exec check's argument may be, whole.
pub(in crate::config) const EXEC_PLACEHOLDERS: [(&str, &str); 2] = [
    ("{address}", "FAILOVERD_ADDRESS"),
    ("{endpoint}", "FAILOVERD_ENDPOINT"),
];

/// Variables failoverd sets for every exec check.
pub(in crate::config) const EXEC_SET_VARIABLES: [&str; 3] =
    ["FAILOVERD_ADDRESS", "FAILOVERD_ENDPOINT", "FAILOVERD_PORT"];
