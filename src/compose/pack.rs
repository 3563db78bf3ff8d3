//! TEMPORARY stand-in until the real packer lands (same API).
use super::message::Message;
pub struct PackedRequest { pub messages: Vec<Message>, pub mails: Vec<usize> }
pub struct Packed { pub requests: Vec<PackedRequest> }
pub fn pack(mails: &[Vec<Message>]) -> Packed {
    let mut requests: Vec<PackedRequest> = Vec::new();
    for (i, m) in mails.iter().enumerate() {
        for msg in m {
            if requests.last().is_none_or(|r| r.messages.len() == 5) {
                requests.push(PackedRequest { messages: Vec::new(), mails: Vec::new() });
            }
            let r = requests.last_mut().unwrap();
            r.messages.push(msg.clone());
            if !r.mails.contains(&i) { r.mails.push(i); }
        }
    }
    Packed { requests }
}
