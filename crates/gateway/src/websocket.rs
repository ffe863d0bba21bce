//! WebSocket (and any HTTP/1.1 upgrade the route allows): once the upstream answers 101, the two
//! upgraded connections are joined and bytes flow both ways until either side closes.

use std::sync::{Arc, Mutex};

use http::{Extensions, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::body::GatewayBody;
use crate::call::InFlight;
use crate::h1::server::Rewind;

/// The client side of an upgrade, as the request's extensions carry it.
#[derive(Clone)]
pub(crate) enum ClientUpgrade {
    /// The gateway's own HTTP/1.x connection: it sends its stream (with the bytes it read
    /// ahead) once the 101 is written. (Shared only because extensions must be `Clone`.)
    Own(Arc<Mutex<Option<oneshot::Receiver<Rewind>>>>),
    /// A hyper connection's.
    Hyper(OnUpgrade),
}

impl ClientUpgrade {
    /// The extension the own connection puts into an upgrade request; it hands its stream to
    /// the returned sender after writing a 101.
    pub(crate) fn own() -> (oneshot::Sender<Rewind>, ClientUpgrade) {
        let (tx, rx) = oneshot::channel();
        (tx, ClientUpgrade::Own(Arc::new(Mutex::new(Some(rx)))))
    }

    /// Takes the client's side of an upgrade out of a request's extensions.
    pub(crate) fn take(extensions: &mut Extensions) -> Option<ClientUpgrade> {
        match extensions.remove::<ClientUpgrade>() {
            Some(own) => Some(own),
            None => extensions.remove::<OnUpgrade>().map(ClientUpgrade::Hyper),
        }
    }
}

/// Joins the client's upgraded connection with the upstream's, in the background; the node's
/// in-flight share (`held`) ends with the joined connection.
pub(crate) fn splice(
    client: ClientUpgrade,
    upstream_resp: &mut Response<GatewayBody>,
    held: Option<InFlight>,
) {
    let Some(upstream) = upstream_resp.extensions_mut().remove::<OnUpgrade>() else {
        return;
    };
    tokio::spawn(async move {
        let _held = held;
        let upstream = match upstream.await {
            Ok(upstream) => upstream,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        let mut upstream = TokioIo::new(upstream);
        let joined = match client {
            ClientUpgrade::Own(client) => {
                let client = client.lock().ok().and_then(|mut c| c.take());
                let Some(client) = client else { return };
                match client.await {
                    Ok(mut client) => {
                        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    }
                    Err(_) => {
                        tracing::debug!("upgrade failed: the client connection ended first");
                        return;
                    }
                }
            }
            ClientUpgrade::Hyper(client) => match client.await {
                Ok(client) => {
                    tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut upstream).await
                }
                Err(e) => {
                    tracing::debug!("upgrade failed: {e}");
                    return;
                }
            },
        };
        if let Err(e) = joined {
            tracing::debug!("upgraded connection ended: {e}");
        }
    });
}
