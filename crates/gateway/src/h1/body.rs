//! A response body read from its connection as the client asks for it; the connection goes
//! back to the pool when the body ended cleanly, and is closed however else it ends.

use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use super::decode::{DecodeError, Decoder, Step};
use super::{make_room, read, Conn, BODY_READ};
use crate::body::BodyError;
use crate::pool::{Keepalive, Pool};

/// See the module documentation.
pub(crate) struct ResponseBody {
    conn: Option<Box<Conn>>,
    decoder: Decoder,
    pool: Pool,
    policy: Keepalive,
}

impl ResponseBody {
    /// The body that follows a response head read on `conn`.
    pub fn new(conn: Box<Conn>, decoder: Decoder, pool: Pool, policy: Keepalive) -> Self {
        ResponseBody {
            conn: Some(conn),
            decoder,
            pool,
            policy,
        }
    }

    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match self.decoder.step(&mut conn.read) {
                Ok(Step::More) => None,
                Ok(step) => Some(step),
                Err(e) => return Poll::Ready(Some(Err(self.fail(e)))),
            };
            match step {
                Some(Step::Data(data)) => {
                    if self.decoder.is_done() {
                        self.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Step::Trailers(trailers)) => {
                    self.release();
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Some(Step::End | Step::More) => {
                    self.release();
                    return Poll::Ready(None);
                }
                None => {}
            }
            let want = match self.decoder.remaining() {
                Some(n) => usize::try_from(n).unwrap_or(BODY_READ).min(BODY_READ),
                None => BODY_READ / 4,
            };
            make_room(&mut conn.read, want);
            match std::task::ready!(read(&mut conn.io, cx, &mut conn.read)) {
                Ok(0) => match self.decoder.eof() {
                    Ok(_) => {
                        // A close-delimited body: the connection is done too.
                        self.conn = None;
                        return Poll::Ready(None);
                    }
                    Err(e) => return Poll::Ready(Some(Err(self.fail(e)))),
                },
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }

    /// The body is complete: the connection goes back to the pool if it may.
    pub fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.release(conn, self.policy);
        }
    }

    /// Closes the connection (the body is given up).
    pub fn abort(&mut self) {
        self.conn = None;
    }

    fn fail(&mut self, e: DecodeError) -> BodyError {
        self.conn = None;
        e.into()
    }
}
