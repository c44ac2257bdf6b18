//! Gossip: each namespace's topic, sealing and publishing its messages, opening what
//! arrives, and telling gossipsub what became of a message.

use std::collections::HashMap;

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::{PeerId, Swarm};
use tracing::debug;
use weft_storage::NamespaceId;

use crate::access;
use crate::node::NodeError;
use crate::swarm::{Behaviour, topic_score_params};
use crate::sync::Verdict;
use crate::wire::{self, Gossip, MAX_PUSH, Topic};

/// Subscribes to the topic of each of `namespaces`; returns the namespace of each topic.
///
/// # Errors
/// [`NodeError::Transport`] when gossipsub refuses a subscription.
pub(crate) fn subscribe(
    swarm: &mut Swarm<Behaviour>,
    namespaces: &[NamespaceId],
) -> Result<HashMap<TopicHash, NamespaceId>, NodeError> {
    let mut topics = HashMap::new();
    for ns in namespaces {
        let topic = IdentTopic::new(Topic::of(ns).gossip_name());
        let gossipsub = &mut swarm.behaviour_mut().gossipsub;
        gossipsub
            .subscribe(&topic)
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        gossipsub
            .set_topic_params(topic.clone(), topic_score_params())
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        topics.insert(topic.hash(), *ns);
    }
    Ok(topics)
}

/// Seals and gossips `message` to the peers of `ns`. Peers that miss it catch up by head
/// exchange.
pub(crate) fn publish(swarm: &mut Swarm<Behaviour>, ns: &NamespaceId, message: &Gossip) {
    let sealed = access::seal(ns, &wire::encode(message));
    let topic = IdentTopic::new(Topic::of(ns).gossip_name());
    match swarm.behaviour_mut().gossipsub.publish(topic, sealed) {
        Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
        Err(e) => debug!(error = %e, "gossip publish failed; peers will catch up"),
    }
}

/// Opens a sealed message of `ns`.
///
/// # Errors
/// Why it does not open or decode.
pub(crate) fn open(ns: &NamespaceId, data: &[u8]) -> Result<Gossip, String> {
    access::unseal(ns, data)
        .map_err(|e| e.to_string())
        .and_then(|opened| wire::decode(&opened, MAX_PUSH).map_err(|e| e.to_string()))
}

/// Tells gossipsub whether to forward message `id` from `peer`.
pub(crate) fn report(
    swarm: &mut Swarm<Behaviour>,
    id: &MessageId,
    peer: &PeerId,
    verdict: Verdict,
) {
    let acceptance = match verdict {
        Verdict::Accept => MessageAcceptance::Accept,
        Verdict::Reject => MessageAcceptance::Reject,
        Verdict::Ignore => MessageAcceptance::Ignore,
    };
    swarm
        .behaviour_mut()
        .gossipsub
        .report_message_validation_result(id, peer, acceptance);
}
