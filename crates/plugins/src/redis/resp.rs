//! RESP2, the Redis serialization protocol: commands out (arrays of bulk strings), replies in.

use std::fmt;

/// The largest bulk string or array accepted in a reply; anything larger is a protocol error
/// (a limiter's replies are a few bytes).
const MAX_LEN: i64 = 64 * 1024 * 1024;
/// The deepest nesting of arrays accepted (`CLUSTER SLOTS` uses three levels).
const MAX_DEPTH: usize = 8;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the server refused this command; the connection stays usable.
    Error(String),
    /// `:42`
    Int(i64),
    /// `$3\r\nfoo`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*2\r\n...`
    Array(Vec<Value>),
}

impl Value {
    /// The integer this reply carries: an integer, or a bulk/simple string of digits (Lua
    /// numbers come back as integers, strings stay strings).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            Value::Simple(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The text of a bulk or simple string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bulk(b) => std::str::from_utf8(b).ok(),
            Value::Simple(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Simple(s) => write!(f, "{s}"),
            Value::Error(e) => write!(f, "(error) {e}"),
            Value::Int(n) => write!(f, "(integer) {n}"),
            Value::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Value::Nil => f.write_str("(nil)"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A command: its name and arguments, each sent as a bulk string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd(Vec<Vec<u8>>);

impl Cmd {
    /// A command named `name` (e.g. `EVALSHA`), without arguments yet.
    pub fn new(name: &str) -> Cmd {
        Cmd(vec![name.as_bytes().to_vec()])
    }

    /// Adds an argument (`&str`, bytes, or a number through [`Cmd::num`]).
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Cmd {
        self.0.push(arg.as_ref().to_vec());
        self
    }

    /// Adds a number argument.
    pub fn num(self, n: impl fmt::Display) -> Cmd {
        self.arg(n.to_string())
    }

    /// The command name, upper-cased as written.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.0[0]).into_owned()
    }

    /// Appends the wire form (`*N\r\n$len\r\narg\r\n...`) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", self.0.len()).as_bytes());
        for arg in &self.0 {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A reply that does not follow RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Parses one reply from the start of `buf`: `Ok(None)` when `buf` holds only part of it,
/// else the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    let mut pos = 0;
    Ok(parse_at(buf, &mut pos, 0)?.map(|v| (v, pos)))
}

/// The line starting at `*pos` (without its CRLF), moving `*pos` past it.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = &buf[*pos..];
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    *pos += end + 2;
    Some(&rest[..end])
}

fn number(line: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProtocolError(format!("bad number {:?}", String::from_utf8_lossy(line))))
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Value>, ProtocolError> {
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(head) = line(buf, pos) else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    Ok(Some(match kind {
        b'+' => Value::Simple(text()),
        b'-' => Value::Error(text()),
        b':' => Value::Int(number(head)?),
        b'$' => {
            let len = number(head)?;
            if len < 0 {
                return Ok(Some(Value::Nil));
            }
            if len > MAX_LEN {
                return Err(ProtocolError(format!("bulk string of {len} bytes")));
            }
            let len = len as usize;
            if buf.len() < *pos + len + 2 {
                return Ok(None);
            }
            if &buf[*pos + len..*pos + len + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string without CRLF".into()));
            }
            let bytes = buf[*pos..*pos + len].to_vec();
            *pos += len + 2;
            Value::Bulk(bytes)
        }
        b'*' => {
            let len = number(head)?;
            if len < 0 {
                return Ok(Some(Value::Nil));
            }
            if len > MAX_LEN || depth >= MAX_DEPTH {
                return Err(ProtocolError(format!(
                    "array of {len} items at depth {depth}"
                )));
            }
            let mut items = Vec::with_capacity(len.min(1024) as usize);
            for _ in 0..len {
                match parse_at(buf, pos, depth + 1)? {
                    Some(item) => items.push(item),
                    None => return Ok(None),
                }
            }
            Value::Array(items)
        }
        other => {
            return Err(ProtocolError(format!(
                "unknown reply type {:?}",
                other as char
            )))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_bulk_arrays() {
        let mut out = Vec::new();
        Cmd::new("SET").arg("k").num(-12).arg(b"").encode(&mut out);
        assert_eq!(
            out,
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n-12\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn parses_every_kind() {
        let wire = b"*6\r\n+OK\r\n-ERR no\r\n:-7\r\n$3\r\na\r\n\r\n$-1\r\n*1\r\n*0\r\n:1\r\n";
        let (v, used) = parse(wire).unwrap().unwrap();
        assert_eq!(used, wire.len() - 4);
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Simple("OK".into()),
                Value::Error("ERR no".into()),
                Value::Int(-7),
                Value::Bulk(b"a\r\n".to_vec()),
                Value::Nil,
                Value::Array(vec![Value::Array(vec![])]),
            ])
        );
        assert_eq!(parse(&wire[used..]).unwrap(), Some((Value::Int(1), 4)));
    }

    #[test]
    fn partial_replies_wait_for_more() {
        let wire = b"*2\r\n$5\r\nhello\r\n:12\r\n";
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(wire).unwrap().is_some());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b":12x\r\n").is_err());
        assert!(parse(b"$2\r\nabcd\r\n").is_err());
        assert!(parse(b"$999999999999\r\n").is_err());
    }

    #[test]
    fn numbers_from_replies() {
        assert_eq!(Value::Int(3).as_int(), Some(3));
        assert_eq!(Value::Bulk(b"42".to_vec()).as_int(), Some(42));
        assert_eq!(Value::Nil.as_int(), None);
        assert_eq!(Value::Simple("PONG".into()).as_str(), Some("PONG"));
    }
}
