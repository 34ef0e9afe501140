//! The dnstap protobuf messages (dnstap.proto, the fields an authoritative server
//! fills), as prost types: no build script, no protoc.

/// `Dnstap.Type`.
pub(crate) const TYPE_MESSAGE: i32 = 1;
/// `Message.Type` of a query an authoritative server received.
pub(crate) const AUTH_QUERY: i32 = 1;
/// `Message.Type` of the response it sent.
pub(crate) const AUTH_RESPONSE: i32 = 2;
/// `SocketFamily`.
pub(crate) const INET: i32 = 1;
/// `SocketFamily`.
pub(crate) const INET6: i32 = 2;
/// `SocketProtocol`.
pub(crate) const UDP: i32 = 1;
/// `SocketProtocol`.
pub(crate) const TCP: i32 = 2;

/// The outer dnstap frame.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Dnstap {
    /// Server identity.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    /// Server version.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    /// The logged message.
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// Always [`TYPE_MESSAGE`].
    #[prost(int32, required, tag = "15")]
    pub r#type: i32,
}

/// One logged DNS message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Message {
    /// [`AUTH_QUERY`] or [`AUTH_RESPONSE`].
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    /// [`INET`] or [`INET6`].
    #[prost(int32, optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// [`UDP`] or [`TCP`].
    #[prost(int32, optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The client's address (4 or 16 octets).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    /// Our address.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    /// The client's port.
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    /// Our port.
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    /// When the query arrived (seconds since the epoch).
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    /// Its nanoseconds.
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// The query, verbatim.
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    /// When the response was sent.
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    /// Its nanoseconds.
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The response, verbatim.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
}
