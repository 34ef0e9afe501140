//! DNS protocol numbers, one table each for the crate: RR types, response codes and
//! classes (the lowest layer: it uses nothing).

/// RR type codes.
pub(crate) mod rtype {
    /// IPv4 address.
    pub(crate) const A: u16 = 1;
    /// Name server.
    pub(crate) const NS: u16 = 2;
    /// Canonical name.
    pub(crate) const CNAME: u16 = 5;
    /// Start of authority.
    pub(crate) const SOA: u16 = 6;
    /// Pointer.
    pub(crate) const PTR: u16 = 12;
    /// Mail exchange.
    pub(crate) const MX: u16 = 15;
    /// Text.
    pub(crate) const TXT: u16 = 16;
    /// IPv6 address.
    pub(crate) const AAAA: u16 = 28;
    /// Service locator.
    pub(crate) const SRV: u16 = 33;
    /// EDNS pseudo-record.
    pub(crate) const OPT: u16 = 41;
    /// Delegation signer.
    pub(crate) const DS: u16 = 43;
    /// Signature.
    pub(crate) const RRSIG: u16 = 46;
    /// Next secure.
    pub(crate) const NSEC: u16 = 47;
    /// Public key.
    pub(crate) const DNSKEY: u16 = 48;
    /// Hashed next secure.
    pub(crate) const NSEC3: u16 = 50;
    /// NSEC3 parameters.
    pub(crate) const NSEC3PARAM: u16 = 51;
    /// Child DS.
    pub(crate) const CDS: u16 = 59;
    /// Child DNSKEY.
    pub(crate) const CDNSKEY: u16 = 60;
    /// Transaction signature.
    pub(crate) const TSIG: u16 = 250;
    /// Incremental zone transfer.
    pub(crate) const IXFR: u16 = 251;
    /// Full zone transfer.
    pub(crate) const AXFR: u16 = 252;
    /// Any type.
    pub(crate) const ANY: u16 = 255;
}

/// Response codes (low 4 bits) and extended codes.
pub(crate) mod rcode {
    /// No error.
    pub(crate) const NOERROR: u16 = 0;
    /// Format error.
    pub(crate) const FORMERR: u16 = 1;
    /// Server failure.
    pub(crate) const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub(crate) const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub(crate) const NOTIMP: u16 = 4;
    /// Refused.
    pub(crate) const REFUSED: u16 = 5;
    /// Not authorised (RFC 8945) / not authoritative (RFC 2136).
    pub(crate) const NOTAUTH: u16 = 9;
    /// Bad EDNS version (extended: needs OPT).
    pub(crate) const BADVERS: u16 = 16;
}

/// Classes.
pub(crate) mod class {
    /// Internet.
    pub(crate) const IN: u16 = 1;
}
