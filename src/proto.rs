//! DNS protocol numbers, one table each for the crate: RR types, response codes and
//! classes (the lowest layer: it uses nothing).

/// RR type codes.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Pointer.
    pub const PTR: u16 = 12;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service locator.
    pub const SRV: u16 = 33;
    /// Delegation name.
    pub const DNAME: u16 = 39;
    /// EDNS pseudo-record.
    pub const OPT: u16 = 41;
    /// Delegation signer.
    pub const DS: u16 = 43;
    /// Signature.
    pub const RRSIG: u16 = 46;
    /// Next secure.
    pub const NSEC: u16 = 47;
    /// Public key.
    pub const DNSKEY: u16 = 48;
    /// Hashed next secure.
    pub const NSEC3: u16 = 50;
    /// NSEC3 parameters.
    pub const NSEC3PARAM: u16 = 51;
    /// Child DS.
    pub const CDS: u16 = 59;
    /// Child DNSKEY.
    pub const CDNSKEY: u16 = 60;
    /// Transaction signature.
    pub const TSIG: u16 = 250;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Full zone transfer.
    pub const AXFR: u16 = 252;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// Response codes (low 4 bits) and extended codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error.
    pub const FORMERR: u16 = 1;
    /// Server failure.
    pub const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub const NOTIMP: u16 = 4;
    /// Refused.
    pub const REFUSED: u16 = 5;
    /// Not authorised (RFC 8945) / not authoritative (RFC 2136).
    pub const NOTAUTH: u16 = 9;
    /// Bad EDNS version (extended: needs OPT).
    pub const BADVERS: u16 = 16;
}

/// Classes.
pub mod class {
    /// Internet.
    pub const IN: u16 = 1;
    /// Chaos.
    pub const CH: u16 = 3;
    /// Hesiod.
    pub const HS: u16 = 4;
    /// NONE (RFC 2136).
    pub const NONE: u16 = 254;
    /// Any class.
    pub const ANY: u16 = 255;
}
