//! Translate: the body in the client's API shape becomes the body in the
//! upstream's shape. Today the route never changes shape, so this is the
//! identity; shape conversions (issue: translation) fill it in, with the
//! response side in the respond stage.

use bytes::Bytes;

use super::{Refusal, Stage};
use crate::exchange::Exchange;

#[derive(Debug, Default)]
pub struct Translate;

impl Stage for Translate {
    /// The inspected body, in the client's shape.
    type Input = Bytes;
    /// The body to send upstream.
    type Output = Bytes;

    async fn run(&self, _ex: &mut Exchange, body: Bytes) -> Result<Bytes, Refusal> {
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener};

    #[tokio::test]
    async fn a_request_whose_route_keeps_its_shape_is_sent_byte_for_byte() {
        let body = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        assert_eq!(Translate.run(&mut ex, body.clone()).await.unwrap(), body);
    }
}
