//! The Open API message types and the envelope around them.
//!
//! Every frame on the wire carries one [`ProtoMessage`]: a `payloadType` number, the encoded inner
//! message and an optional `clientMsgId` the server echoes back on the response. The generated
//! types come from our `.proto` subset in `proto/` (field numbers identical to Spotware's set).
//!
//! - [`OpenApiMessage`] ties each inner message type to its payload type, so
//!   [`OpenApiMessage::wrap`] builds the envelope and [`OpenApiMessage::unwrap_from`] opens it.
//! - [`Payload`] decodes any envelope into the messages this crate knows; payload types it does not
//!   know are kept as [`Payload::Unknown`] rather than rejected, because the server adds new events
//!   over time and an unknown event must not tear down the session.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}
pub use pb::*;

use prost::Message;

/// Why an envelope could not be opened into the expected message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The envelope holds a different message than the caller asked for.
    #[error("expected payload type {expected} ({name}), got {got}")]
    WrongPayloadType {
        /// The payload type of the requested message.
        expected: u32,
        /// The requested message's name.
        name: &'static str,
        /// The payload type found in the envelope.
        got: u32,
    },
    /// The payload bytes are not a valid encoding of the message named by the payload type.
    #[error("payload type {payload_type} ({name}) does not decode: {reason}")]
    Decode {
        /// The envelope's payload type.
        payload_type: u32,
        /// The message the payload type names.
        name: &'static str,
        /// prost's description of the failure.
        reason: String,
    },
}

/// A message that travels inside a [`ProtoMessage`] with a fixed payload type.
pub trait OpenApiMessage: Message + Default + Sized {
    /// The `payloadType` number of this message (its `payloadType` field's default).
    const PAYLOAD_TYPE: u32;
    /// The message name as in the `.proto` files, for logs and errors.
    const NAME: &'static str;

    /// Wraps this message into an envelope, with the request id the server will echo back.
    fn wrap(&self, client_msg_id: Option<String>) -> ProtoMessage {
        ProtoMessage {
            payload_type: Self::PAYLOAD_TYPE,
            payload: Some(self.encode_to_vec()),
            client_msg_id,
        }
    }

    /// Opens an envelope that must hold this message.
    fn unwrap_from(envelope: &ProtoMessage) -> Result<Self, MessageError> {
        if envelope.payload_type != Self::PAYLOAD_TYPE {
            return Err(MessageError::WrongPayloadType {
                expected: Self::PAYLOAD_TYPE,
                name: Self::NAME,
                got: envelope.payload_type,
            });
        }
        decode_as::<Self>(envelope.payload.as_deref().unwrap_or_default())
    }
}

fn decode_as<M: OpenApiMessage>(bytes: &[u8]) -> Result<M, MessageError> {
    M::decode(bytes).map_err(|e| MessageError::Decode {
        payload_type: M::PAYLOAD_TYPE,
        name: M::NAME,
        reason: e.to_string(),
    })
}

macro_rules! open_api_messages {
    ($( $variant:ident => $ty:ident($proto:literal) = $pt:expr ),* $(,)?) => {
        $(
            impl OpenApiMessage for $ty {
                const PAYLOAD_TYPE: u32 = $pt as u32;
                const NAME: &'static str = $proto;
            }
        )*

        /// Any message of the subset, decoded from its envelope; `Unknown` keeps the rest.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Payload {
            $(
                #[allow(missing_docs)]
                $variant($ty),
            )*
            /// A payload type this crate does not model, kept as raw bytes.
            Unknown {
                /// The envelope's payload type.
                payload_type: u32,
                /// The undecoded inner message.
                payload: Vec<u8>,
            },
        }

        impl Payload {
            /// Every modelled message: (payload type, `.proto` name).
            pub const KNOWN: &'static [(u32, &'static str)] = &[
                $( (<$ty as OpenApiMessage>::PAYLOAD_TYPE, $proto), )*
            ];

            /// Decodes an envelope. Unknown payload types are not errors; a known payload type
            /// whose bytes do not decode is.
            pub fn decode(envelope: &ProtoMessage) -> Result<Self, MessageError> {
                let bytes = envelope.payload.as_deref().unwrap_or_default();
                $(
                    if envelope.payload_type == <$ty as OpenApiMessage>::PAYLOAD_TYPE {
                        return decode_as::<$ty>(bytes).map(Payload::$variant);
                    }
                )*
                Ok(Payload::Unknown { payload_type: envelope.payload_type, payload: bytes.to_vec() })
            }

            /// The payload type number of the message held.
            pub fn payload_type(&self) -> u32 {
                match self {
                    $( Payload::$variant(_) => <$ty as OpenApiMessage>::PAYLOAD_TYPE, )*
                    Payload::Unknown { payload_type, .. } => *payload_type,
                }
            }

            /// The `.proto` name of the message held (`"Unknown"` for unknown payload types).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Payload::$variant(_) => <$ty as OpenApiMessage>::NAME, )*
                    Payload::Unknown { .. } => "Unknown",
                }
            }

            /// Wraps the message back into an envelope.
            pub fn to_envelope(&self, client_msg_id: Option<String>) -> ProtoMessage {
                match self {
                    $( Payload::$variant(m) => m.wrap(client_msg_id), )*
                    Payload::Unknown { payload_type, payload } => ProtoMessage {
                        payload_type: *payload_type,
                        payload: Some(payload.clone()),
                        client_msg_id,
                    },
                }
            }
        }

        $(
            impl TryFrom<Payload> for $ty {
                type Error = Payload;
                fn try_from(p: Payload) -> Result<Self, Payload> {
                    match p {
                        Payload::$variant(m) => Ok(m),
                        other => Err(other),
                    }
                }
            }

            impl From<$ty> for Payload {
                fn from(m: $ty) -> Self {
                    Payload::$variant(m)
                }
            }
        )*

        #[cfg(test)]
        mod payload_type_table {
            use super::*;

            /// The table above is typed by hand; the `.proto` defaults are the authority.
            #[test]
            fn every_payload_type_matches_the_proto_default() {
                $(
                    assert_eq!(
                        <$ty as OpenApiMessage>::PAYLOAD_TYPE,
                        $ty::default().payload_type() as u32,
                        "{}", stringify!($ty)
                    );
                )*
            }
        }
    };
}

open_api_messages! {
    CommonErrorRes => ProtoErrorRes("ProtoErrorRes") = ProtoPayloadType::ErrorRes,
    HeartbeatEvent => ProtoHeartbeatEvent("ProtoHeartbeatEvent") = ProtoPayloadType::HeartbeatEvent,
    ApplicationAuthReq => ProtoOaApplicationAuthReq("ProtoOAApplicationAuthReq") = ProtoOaPayloadType::ProtoOaApplicationAuthReq,
    ApplicationAuthRes => ProtoOaApplicationAuthRes("ProtoOAApplicationAuthRes") = ProtoOaPayloadType::ProtoOaApplicationAuthRes,
    AccountAuthReq => ProtoOaAccountAuthReq("ProtoOAAccountAuthReq") = ProtoOaPayloadType::ProtoOaAccountAuthReq,
    AccountAuthRes => ProtoOaAccountAuthRes("ProtoOAAccountAuthRes") = ProtoOaPayloadType::ProtoOaAccountAuthRes,
    ErrorRes => ProtoOaErrorRes("ProtoOAErrorRes") = ProtoOaPayloadType::ProtoOaErrorRes,
    ClientDisconnectEvent => ProtoOaClientDisconnectEvent("ProtoOAClientDisconnectEvent") = ProtoOaPayloadType::ProtoOaClientDisconnectEvent,
    AccountsTokenInvalidatedEvent => ProtoOaAccountsTokenInvalidatedEvent("ProtoOAAccountsTokenInvalidatedEvent") = ProtoOaPayloadType::ProtoOaAccountsTokenInvalidatedEvent,
    VersionReq => ProtoOaVersionReq("ProtoOAVersionReq") = ProtoOaPayloadType::ProtoOaVersionReq,
    VersionRes => ProtoOaVersionRes("ProtoOAVersionRes") = ProtoOaPayloadType::ProtoOaVersionRes,
    NewOrderReq => ProtoOaNewOrderReq("ProtoOANewOrderReq") = ProtoOaPayloadType::ProtoOaNewOrderReq,
    ExecutionEvent => ProtoOaExecutionEvent("ProtoOAExecutionEvent") = ProtoOaPayloadType::ProtoOaExecutionEvent,
    CancelOrderReq => ProtoOaCancelOrderReq("ProtoOACancelOrderReq") = ProtoOaPayloadType::ProtoOaCancelOrderReq,
    AmendPositionSltpReq => ProtoOaAmendPositionSltpReq("ProtoOAAmendPositionSLTPReq") = ProtoOaPayloadType::ProtoOaAmendPositionSltpReq,
    ClosePositionReq => ProtoOaClosePositionReq("ProtoOAClosePositionReq") = ProtoOaPayloadType::ProtoOaClosePositionReq,
    AssetListReq => ProtoOaAssetListReq("ProtoOAAssetListReq") = ProtoOaPayloadType::ProtoOaAssetListReq,
    AssetListRes => ProtoOaAssetListRes("ProtoOAAssetListRes") = ProtoOaPayloadType::ProtoOaAssetListRes,
    SymbolsListReq => ProtoOaSymbolsListReq("ProtoOASymbolsListReq") = ProtoOaPayloadType::ProtoOaSymbolsListReq,
    SymbolsListRes => ProtoOaSymbolsListRes("ProtoOASymbolsListRes") = ProtoOaPayloadType::ProtoOaSymbolsListRes,
    SymbolByIdReq => ProtoOaSymbolByIdReq("ProtoOASymbolByIdReq") = ProtoOaPayloadType::ProtoOaSymbolByIdReq,
    SymbolByIdRes => ProtoOaSymbolByIdRes("ProtoOASymbolByIdRes") = ProtoOaPayloadType::ProtoOaSymbolByIdRes,
    SymbolChangedEvent => ProtoOaSymbolChangedEvent("ProtoOASymbolChangedEvent") = ProtoOaPayloadType::ProtoOaSymbolChangedEvent,
    TraderReq => ProtoOaTraderReq("ProtoOATraderReq") = ProtoOaPayloadType::ProtoOaTraderReq,
    TraderRes => ProtoOaTraderRes("ProtoOATraderRes") = ProtoOaPayloadType::ProtoOaTraderRes,
    TraderUpdatedEvent => ProtoOaTraderUpdatedEvent("ProtoOATraderUpdatedEvent") = ProtoOaPayloadType::ProtoOaTraderUpdateEvent,
    ReconcileReq => ProtoOaReconcileReq("ProtoOAReconcileReq") = ProtoOaPayloadType::ProtoOaReconcileReq,
    ReconcileRes => ProtoOaReconcileRes("ProtoOAReconcileRes") = ProtoOaPayloadType::ProtoOaReconcileRes,
    OrderErrorEvent => ProtoOaOrderErrorEvent("ProtoOAOrderErrorEvent") = ProtoOaPayloadType::ProtoOaOrderErrorEvent,
    DealListReq => ProtoOaDealListReq("ProtoOADealListReq") = ProtoOaPayloadType::ProtoOaDealListReq,
    DealListRes => ProtoOaDealListRes("ProtoOADealListRes") = ProtoOaPayloadType::ProtoOaDealListRes,
    OrderListReq => ProtoOaOrderListReq("ProtoOAOrderListReq") = ProtoOaPayloadType::ProtoOaOrderListReq,
    OrderListRes => ProtoOaOrderListRes("ProtoOAOrderListRes") = ProtoOaPayloadType::ProtoOaOrderListRes,
    GetAccountListByAccessTokenReq => ProtoOaGetAccountListByAccessTokenReq("ProtoOAGetAccountListByAccessTokenReq") = ProtoOaPayloadType::ProtoOaGetAccountsByAccessTokenReq,
    GetAccountListByAccessTokenRes => ProtoOaGetAccountListByAccessTokenRes("ProtoOAGetAccountListByAccessTokenRes") = ProtoOaPayloadType::ProtoOaGetAccountsByAccessTokenRes,
    RefreshTokenReq => ProtoOaRefreshTokenReq("ProtoOARefreshTokenReq") = ProtoOaPayloadType::ProtoOaRefreshTokenReq,
    RefreshTokenRes => ProtoOaRefreshTokenRes("ProtoOARefreshTokenRes") = ProtoOaPayloadType::ProtoOaRefreshTokenRes,
    SubscribeSpotsReq => ProtoOaSubscribeSpotsReq("ProtoOASubscribeSpotsReq") = ProtoOaPayloadType::ProtoOaSubscribeSpotsReq,
    SubscribeSpotsRes => ProtoOaSubscribeSpotsRes("ProtoOASubscribeSpotsRes") = ProtoOaPayloadType::ProtoOaSubscribeSpotsRes,
    UnsubscribeSpotsReq => ProtoOaUnsubscribeSpotsReq("ProtoOAUnsubscribeSpotsReq") = ProtoOaPayloadType::ProtoOaUnsubscribeSpotsReq,
    UnsubscribeSpotsRes => ProtoOaUnsubscribeSpotsRes("ProtoOAUnsubscribeSpotsRes") = ProtoOaPayloadType::ProtoOaUnsubscribeSpotsRes,
    SpotEvent => ProtoOaSpotEvent("ProtoOASpotEvent") = ProtoOaPayloadType::ProtoOaSpotEvent,
    SubscribeLiveTrendbarReq => ProtoOaSubscribeLiveTrendbarReq("ProtoOASubscribeLiveTrendbarReq") = ProtoOaPayloadType::ProtoOaSubscribeLiveTrendbarReq,
    SubscribeLiveTrendbarRes => ProtoOaSubscribeLiveTrendbarRes("ProtoOASubscribeLiveTrendbarRes") = ProtoOaPayloadType::ProtoOaSubscribeLiveTrendbarRes,
    UnsubscribeLiveTrendbarReq => ProtoOaUnsubscribeLiveTrendbarReq("ProtoOAUnsubscribeLiveTrendbarReq") = ProtoOaPayloadType::ProtoOaUnsubscribeLiveTrendbarReq,
    UnsubscribeLiveTrendbarRes => ProtoOaUnsubscribeLiveTrendbarRes("ProtoOAUnsubscribeLiveTrendbarRes") = ProtoOaPayloadType::ProtoOaUnsubscribeLiveTrendbarRes,
    GetTrendbarsReq => ProtoOaGetTrendbarsReq("ProtoOAGetTrendbarsReq") = ProtoOaPayloadType::ProtoOaGetTrendbarsReq,
    GetTrendbarsRes => ProtoOaGetTrendbarsRes("ProtoOAGetTrendbarsRes") = ProtoOaPayloadType::ProtoOaGetTrendbarsRes,
    AccountLogoutReq => ProtoOaAccountLogoutReq("ProtoOAAccountLogoutReq") = ProtoOaPayloadType::ProtoOaAccountLogoutReq,
    AccountLogoutRes => ProtoOaAccountLogoutRes("ProtoOAAccountLogoutRes") = ProtoOaPayloadType::ProtoOaAccountLogoutRes,
    AccountDisconnectEvent => ProtoOaAccountDisconnectEvent("ProtoOAAccountDisconnectEvent") = ProtoOaPayloadType::ProtoOaAccountDisconnectEvent,
    GetPositionUnrealizedPnlReq => ProtoOaGetPositionUnrealizedPnLReq("ProtoOAGetPositionUnrealizedPnLReq") = ProtoOaPayloadType::ProtoOaGetPositionUnrealizedPnlReq,
    GetPositionUnrealizedPnlRes => ProtoOaGetPositionUnrealizedPnLRes("ProtoOAGetPositionUnrealizedPnLRes") = ProtoOaPayloadType::ProtoOaGetPositionUnrealizedPnlRes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_then_decode_gives_the_same_message() {
        let req = ProtoOaNewOrderReq {
            ctid_trader_account_id: 42,
            symbol_id: 1,
            order_type: ProtoOaOrderType::Market as i32,
            trade_side: ProtoOaTradeSide::Sell as i32,
            volume: 150_000,
            label: Some("EURUSD|M15".into()),
            ..Default::default()
        };
        let env = req.wrap(Some("7".into()));
        assert_eq!(env.payload_type, 2106);
        assert_eq!(env.client_msg_id.as_deref(), Some("7"));
        assert_eq!(Payload::decode(&env), Ok(Payload::NewOrderReq(req.clone())));
        assert_eq!(ProtoOaNewOrderReq::unwrap_from(&env), Ok(req));
    }

    #[test]
    fn unknown_payload_type_is_kept_not_refused() {
        let env = ProtoMessage {
            payload_type: 2155,
            payload: Some(vec![8, 1]),
            client_msg_id: None,
        };
        let p = Payload::decode(&env).expect("unknown is not an error");
        assert_eq!(
            p,
            Payload::Unknown {
                payload_type: 2155,
                payload: vec![8, 1]
            }
        );
        assert_eq!(p.to_envelope(None), env);
    }

    #[test]
    fn wrong_payload_type_and_garbage_are_typed_errors() {
        let env = ProtoOaVersionReq::default().wrap(None);
        assert!(matches!(
            ProtoOaTraderReq::unwrap_from(&env),
            Err(MessageError::WrongPayloadType {
                expected: 2121,
                got: 2104,
                ..
            })
        ));
        let bad = ProtoMessage {
            payload_type: 2131,
            payload: Some(vec![0xff, 0xff]),
            client_msg_id: None,
        };
        assert!(matches!(
            Payload::decode(&bad),
            Err(MessageError::Decode {
                payload_type: 2131,
                ..
            })
        ));
    }
}
