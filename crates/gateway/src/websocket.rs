//! WebSocket (and any HTTP/1.1 upgrade the route allows): once the upstream answers 101, the two
//! upgraded connections are joined and bytes flow both ways until either side closes.

use http::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::GatewayBody;
use crate::call::InFlight;

/// Joins the client's upgraded connection with the upstream's, in the background; the node's
/// in-flight share (`held`) ends with the joined connection.
pub(crate) fn splice(
    client: OnUpgrade,
    upstream_resp: &mut Response<GatewayBody>,
    held: Option<InFlight>,
) {
    let Some(upstream) = upstream_resp.extensions_mut().remove::<OnUpgrade>() else {
        return;
    };
    tokio::spawn(async move {
        let _held = held;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!("upgrade failed: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!("upgraded connection ended: {e}");
        }
    });
}
