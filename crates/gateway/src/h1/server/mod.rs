//! HTTP/1.x from clients: the gateway's own server connection.
//!
//! A connection is served in its own task, one request after another ([`conn`]): the request
//! head is read into the connection's reused buffer and parsed once, in place (httparse), and
//! judged with nginx's rules ([`crate::head::judge`]); a refused head is answered with nginx's
//! status and page and the connection closes (lingering, as the client may still be sending).
//! The request's body is read only when the gateway asks for it ([`body`]), the response head
//! is written straight into the connection's write buffer ([`response`]) and small body frames
//! follow it in the same write. While the request is handled and no body is being read, the
//! connection watches for the client going away (nginx's 499). An upgrade (WebSocket) hands the
//! connection, with the bytes read ahead, to the splice once the 101 is written.
//!
//! HTTP/2 (h2c prior knowledge, ALPN `h2`) stays with hyper's server ([`crate::server`]).

mod body;
mod conn;
mod date;
mod drain;
mod io;
mod request;
mod response;

pub use body::RequestBody;
pub(crate) use conn::serve;
pub use drain::{Drain, Watch};
pub use io::{Io, Rewind};
