//! LINE message objects as the Messaging API's JSON wants them (the `TextMessage`,
//! `ImageMessage` and `StickerMessage` schemas of messaging-api.yml).

use serde::{Deserialize, Serialize};

/// One LINE message object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Message {
    Text(TextMessage),
    Image(ImageMessage),
    Sticker(StickerMessage),
}

/// A text message; each emoji's `index` points at a `$` in `text`, counted in UTF-16 units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextMessage {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emojis: Vec<Emoji>,
}

/// A LINE emoji placed on a `$` of the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Emoji {
    pub index: u32,
    pub product_id: String,
    pub emoji_id: String,
}

/// An image LINE fetches itself: both URLs must be HTTPS (at most 2,000 characters); the
/// original is a JPEG or PNG of at most 10 MB, the preview one of at most 1 MB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageMessage {
    pub original_content_url: String,
    pub preview_image_url: String,
}

/// A sticker from LINE's list of stickers a bot may send; both ids are strings of digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StickerMessage {
    pub package_id: String,
    pub sticker_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn image() -> Message {
        Message::Image(ImageMessage {
            original_content_url:
                "https://gw.example.com/media/0123456789abcdef0123456789abcdef.jpg".into(),
            preview_image_url: "https://gw.example.com/media/fedcba9876543210fedcba9876543210.jpg"
                .into(),
        })
    }

    fn sticker() -> Message {
        Message::Sticker(StickerMessage {
            package_id: "446".into(),
            sticker_id: "1988".into(),
        })
    }

    #[test]
    fn image_and_sticker_json() {
        assert_eq!(
            serde_json::to_value(image()).unwrap(),
            json!({
                "type": "image",
                "originalContentUrl": "https://gw.example.com/media/0123456789abcdef0123456789abcdef.jpg",
                "previewImageUrl": "https://gw.example.com/media/fedcba9876543210fedcba9876543210.jpg",
            })
        );
        assert_eq!(
            serde_json::to_value(sticker()).unwrap(),
            json!({"type": "sticker", "packageId": "446", "stickerId": "1988"})
        );
    }

    #[test]
    fn json_round_trips() {
        for m in [image(), sticker()] {
            let back: Message = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back, m);
        }
    }

    /// The spec's schema for a message type, if the spec is on this machine; found the way
    /// tests/support/spec.rs finds it. CI sets MAIL2LINE_REQUIRE_SPEC=1 so a missing spec
    /// fails there instead of skipping. (The integration tests validate whole request bodies
    /// with a JSON Schema validator; this is the quick check at the unit level.)
    fn spec_schema(name: &str) -> Option<serde_yaml::Value> {
        let dir = match std::env::var_os("MAIL2LINE_LINE_OPENAPI_DIR") {
            Some(dir) => std::path::PathBuf::from(dir),
            None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/line-openapi"),
        };
        let path = dir.join("messaging-api.yml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            assert!(
                std::env::var("MAIL2LINE_REQUIRE_SPEC").map_or(true, |v| v.trim() != "1"),
                "MAIL2LINE_REQUIRE_SPEC is set but {} cannot be read",
                path.display()
            );
            return None;
        };
        let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        Some(spec["components"]["schemas"][name].clone())
    }

    /// Our JSON has every key the schema requires, only keys it defines, all strings, and
    /// the `type` the discriminator maps to this schema.
    fn assert_matches_schema(m: &Message, schema_name: &str, type_name: &str) {
        let Some(schema) = spec_schema(schema_name) else {
            return;
        };
        let Value::Object(json) = serde_json::to_value(m).unwrap() else {
            panic!()
        };
        assert_eq!(json["type"], type_name);
        let required: Vec<&str> = schema["required"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let props = &schema["allOf"][1]["properties"];
        for key in &required {
            assert!(json.contains_key(*key), "{schema_name}: {key} missing");
        }
        for (key, value) in &json {
            if key == "type" {
                continue;
            }
            assert_eq!(
                props[key.as_str()]["type"].as_str(),
                Some("string"),
                "{schema_name}.{key}"
            );
            assert!(value.is_string());
        }
    }

    #[test]
    fn image_and_sticker_follow_the_spec() {
        assert_matches_schema(&image(), "ImageMessage", "image");
        assert_matches_schema(&sticker(), "StickerMessage", "sticker");
    }
}
