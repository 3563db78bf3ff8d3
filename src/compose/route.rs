//! Recipients + messages → the LINE requests that deliver them.
//!
//! Users of one mail share a multicast (at most 500 ids a request) because one multicast costs
//! one request where N pushes cost N; a single user gets a push (multicast has a lower rate
//! limit and no `sentMessages` in its answer). Groups and rooms can only be pushed to, one each.

use std::collections::HashSet;

use crate::envelope::Recipient;

use crate::line::message::Message;
use crate::line::request::{Endpoint, Request, MAX_MULTICAST_IDS};

/// Plans the requests that deliver `messages` to every recipient, in a stable order: users
/// first (by RCPT order), then groups and rooms. Duplicate recipients get one delivery.
pub fn plan(rcpts: &[Recipient], messages: Vec<Message>) -> Vec<Request> {
    let mut users: Vec<&str> = Vec::new();
    let mut others: Vec<&str> = Vec::new();
    // A set, not `contains` on the lists: `followers@` can be tens of thousands of users, and a
    // linear scan per id made planning such a mail quadratic.
    let mut seen: HashSet<&str> = HashSet::with_capacity(rcpts.len());
    for r in rcpts {
        let list = match r {
            Recipient::User(_) => &mut users,
            Recipient::Group(_) | Recipient::Room(_) => &mut others,
            // Expanded to users before planning (see `delivery`); nothing to send to itself.
            Recipient::Followers => continue,
        };
        if seen.insert(r.id()) {
            list.push(r.id());
        }
    }
    let mut endpoints = Vec::new();
    if users.len() == 1 {
        endpoints.push(Endpoint::Push { to: users[0].to_owned() });
    } else {
        // None when only groups/rooms (or nobody) were named.
        for chunk in users.chunks(MAX_MULTICAST_IDS) {
            endpoints.push(Endpoint::Multicast { to: chunk.iter().map(|s| s.to_string()).collect() });
        }
    }
    endpoints.extend(others.into_iter().map(|id| Endpoint::Push { to: id.to_owned() }));
    // Every request carries the same messages: the last one takes them, the others a copy.
    let mut out: Vec<Request> = endpoints.into_iter().map(|endpoint| Request { endpoint, messages: Vec::new() }).collect();
    if let Some((last, rest)) = out.split_last_mut() {
        for req in rest {
            req.messages = messages.clone();
        }
        last.messages = messages;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::message::TextMessage;

    fn user(i: usize) -> Recipient {
        Recipient::User(format!("U{i:032x}"))
    }

    fn msgs() -> Vec<Message> {
        vec![Message::Text(TextMessage { text: "hi".into(), emojis: vec![] })]
    }

    #[test]
    fn one_user_is_a_push() {
        let plan = plan(&[user(1)], msgs());
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].endpoint, Endpoint::Push { to: "U00000000000000000000000000000001".into() });
        assert_eq!(plan[0].messages, msgs());
    }

    #[test]
    fn several_users_share_multicasts_of_at_most_500() {
        let rcpts: Vec<Recipient> = (0..1201).map(user).collect();
        let plan = plan(&rcpts, msgs());
        let sizes: Vec<usize> = plan
            .iter()
            .map(|r| match &r.endpoint {
                Endpoint::Multicast { to } => to.len(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(sizes, vec![500, 500, 201]);
        let Endpoint::Multicast { to } = &plan[2].endpoint else { unreachable!() };
        assert_eq!(to[200], "U000000000000000000000000000004b0");
    }

    /// Found while fuzzing (the `mime` target's 503-user mails were its slowest inputs):
    /// deduplicating was quadratic in the recipients. A followers@ mail to 60,000 users with
    /// every one listed twice plans in linear time and keeps the first-seen order.
    #[test]
    fn many_recipients_with_duplicates_keep_order_and_appear_once() {
        let rcpts: Vec<Recipient> = (0..60_000).chain(0..60_000).map(user).collect();
        let plan = plan(&rcpts, msgs());
        assert_eq!(plan.len(), 120);
        let ids: Vec<String> = plan
            .iter()
            .flat_map(|r| match &r.endpoint {
                Endpoint::Multicast { to } => to.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(ids, (0..60_000).map(|i| format!("U{i:032x}")).collect::<Vec<_>>());
    }

    #[test]
    fn groups_and_rooms_are_pushed_one_by_one_after_users() {
        let g = Recipient::Group(format!("C{:032x}", 7));
        let r = Recipient::Room(format!("R{:032x}", 8));
        let plan = plan(&[g.clone(), user(1), r.clone(), user(2), user(1), g.clone()], msgs());
        let eps: Vec<Endpoint> = plan.into_iter().map(|r| r.endpoint).collect();
        assert_eq!(
            eps,
            vec![
                Endpoint::Multicast { to: vec![format!("U{:032x}", 1), format!("U{:032x}", 2)] },
                Endpoint::Push { to: format!("C{:032x}", 7) },
                Endpoint::Push { to: format!("R{:032x}", 8) },
            ]
        );
    }
}
