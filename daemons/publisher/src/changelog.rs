//! The changelog as a fold over `CHANGELOG` events, and the rules its API
//! checks, both pure.
//!
//! Every [`ChangelogEntry`] event carries the entry's whole state after it,
//! so an entry is the event with the highest HLC (ties broken by event id):
//! like maintenance windows, the fold does not depend on arrival order.
//! A withdrawn entry stays in the fold (the API can list it) but is never
//! rendered.

use std::collections::BTreeMap;

use beacon_contract::api::{ChangelogImage, ChangelogView, CHANGELOG_IMAGE_MAX_BYTES};
use beacon_contract::event::{Envelope, EventId};
use beacon_contract::hlc::Hlc;
use beacon_contract::messages::{ChangelogEntry, CHANGELOG_CATEGORIES};
use beacon_page::config::{ConfigError, PageConfig};

/// One entry, folded, with the order key of its latest event.
#[derive(Debug, Clone, PartialEq)]
struct Folded {
    view: ChangelogView,
    latest: (Hlc, EventId),
}

/// A page's changelog: every entry, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changelog {
    entries: BTreeMap<String, Folded>,
}

impl Changelog {
    /// Folds one more event in (`sequence`: its stream sequence).
    /// Idempotent and order-independent.
    pub fn apply(&mut self, envelope: &Envelope<ChangelogEntry>, sequence: u64) {
        let at = (envelope.hlc, envelope.id);
        let time = envelope.hlc.wall_ms;
        match self.entries.get_mut(&envelope.data.entry) {
            None => {
                self.entries.insert(
                    envelope.data.entry.clone(),
                    Folded {
                        view: ChangelogView {
                            entry: envelope.data.clone(),
                            created_at_ms: time,
                            updated_at_ms: time,
                            revision: sequence,
                        },
                        latest: at,
                    },
                );
            }
            Some(folded) => {
                folded.view.created_at_ms = folded.view.created_at_ms.min(time);
                folded.view.revision = folded.view.revision.max(sequence);
                if at > folded.latest {
                    folded.view.entry = envelope.data.clone();
                    folded.view.updated_at_ms = time;
                    folded.latest = at;
                }
            }
        }
    }

    /// One entry, withdrawn or not.
    pub fn get(&self, entry: &str) -> Option<&ChangelogView> {
        self.entries.get(entry).map(|f| &f.view)
    }

    /// Entries newest publication first; withdrawn ones only with `all`.
    pub fn list(&self, all: bool) -> Vec<ChangelogView> {
        let mut views: Vec<ChangelogView> = self
            .entries
            .values()
            .map(|f| f.view.clone())
            .filter(|v| all || !v.entry.withdrawn)
            .collect();
        views.sort_by(|a, b| {
            (published_at(b), &b.entry.entry).cmp(&(published_at(a), &a.entry.entry))
        });
        views
    }
}

/// The date an entry shows: its publication date, or its first event's
/// time for entries written before the field existed.
pub fn published_at(view: &ChangelogView) -> u64 {
    if view.entry.published_at_ms > 0 {
        view.entry.published_at_ms
    } else {
        view.created_at_ms
    }
}

/// Longest title accepted.
pub const MAX_TITLE: usize = 200;
/// Longest body accepted, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most images one request may carry.
pub const MAX_IMAGES: usize = 4;

fn error(location: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        location: location.to_owned(),
        message: message.into(),
    }
}

/// Checks an entry's fields against its page; returns every problem.
pub fn validate(entry: &ChangelogEntry, page: Option<&PageConfig>) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if page.is_none() {
        errors.push(error("page", format!("no page {:?}", entry.page)));
    }
    if entry.title.trim().is_empty() {
        errors.push(error("title", "must not be empty"));
    }
    if entry.title.chars().count() > MAX_TITLE {
        errors.push(error("title", format!("at most {MAX_TITLE} characters")));
    }
    if entry.body_markdown.len() > MAX_BODY {
        errors.push(error("body_markdown", format!("at most {MAX_BODY} bytes")));
    }
    if !CHANGELOG_CATEGORIES.contains(&entry.category.as_str()) {
        errors.push(error(
            "category",
            format!(
                "{:?} is not one of {}",
                entry.category,
                CHANGELOG_CATEGORIES.join(", ")
            ),
        ));
    }
    if let Some(page) = page {
        for (i, component) in entry.components.iter().enumerate() {
            if page.component(component).is_none() {
                errors.push(error(
                    &format!("components[{i}]"),
                    format!("no component {component:?} on page {}", page.id),
                ));
            }
        }
    }
    errors
}

/// The image kinds accepted, by extension, with the bytes they start with.
const IMAGE_KINDS: [(&str, &[u8]); 5] = [
    ("png", b"\x89PNG\r\n\x1a\n"),
    ("jpg", b"\xff\xd8\xff"),
    ("jpeg", b"\xff\xd8\xff"),
    ("gif", b"GIF8"),
    ("webp", b"RIFF"),
];

/// Decodes and checks uploaded images: a safe name with an image
/// extension, bytes that really are that kind of image, within the size
/// limit. Returns (name, bytes) or every problem.
pub fn decode_images(
    images: &[ChangelogImage],
) -> Result<Vec<(String, Vec<u8>)>, Vec<ConfigError>> {
    use base64::Engine;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    if images.len() > MAX_IMAGES {
        errors.push(error("images", format!("at most {MAX_IMAGES} per request")));
    }
    for (i, image) in images.iter().enumerate() {
        let location = format!("images[{i}]");
        let Some((stem, ext)) = image.name.rsplit_once('.') else {
            errors.push(error(&location, "the name needs an image extension"));
            continue;
        };
        let stem_ok = !stem.is_empty()
            && stem.len() <= 64
            && stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        let Some((_, magic)) = IMAGE_KINDS.iter().find(|(e, _)| *e == ext) else {
            errors.push(error(
                &location,
                format!("{:?}: only png, jpg, jpeg, gif and webp", image.name),
            ));
            continue;
        };
        if !stem_ok {
            errors.push(error(
                &location,
                format!(
                    "{:?}: the name may contain only a-z, 0-9, '-' and '_' before the extension",
                    image.name
                ),
            ));
            continue;
        }
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&image.data_base64) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(error(&location, format!("not base64: {e}")));
                continue;
            }
        };
        if bytes.len() > CHANGELOG_IMAGE_MAX_BYTES {
            errors.push(error(
                &location,
                format!("larger than {CHANGELOG_IMAGE_MAX_BYTES} bytes"),
            ));
            continue;
        }
        if !bytes.starts_with(magic) {
            errors.push(error(&location, format!("the bytes are not a {ext} image")));
            continue;
        }
        out.push((image.name.clone(), bytes));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_contract::hlc::Hlc;

    fn entry(id: &str, title: &str, withdrawn: bool) -> ChangelogEntry {
        ChangelogEntry {
            page: "demo".into(),
            entry: id.into(),
            title: title.into(),
            body_markdown: String::new(),
            category: "fix".into(),
            components: vec![],
            withdrawn,
            published_at_ms: 0,
            images: vec![],
            actor: "alice".into(),
        }
    }

    fn envelope(wall: u64, data: ChangelogEntry) -> Envelope<ChangelogEntry> {
        Envelope::with_id(EventId::new(), Hlc::new(wall, 0), "eu", data)
    }

    #[test]
    fn the_latest_event_wins_in_any_order() {
        let events = [
            envelope(1_000, entry("a", "first", false)),
            envelope(2_000, entry("a", "second", false)),
            envelope(3_000, entry("a", "second", true)),
            envelope(1_500, entry("b", "other", false)),
        ];
        let orders: [[usize; 4]; 3] = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]];
        let mut results = Vec::new();
        for order in orders {
            let mut log = Changelog::default();
            for i in order {
                log.apply(&events[i], i as u64 + 1);
            }
            results.push(log.list(true));
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        let mut log = Changelog::default();
        for (seq, event) in events.iter().enumerate() {
            log.apply(event, seq as u64 + 1);
        }
        let visible = log.list(false);
        assert_eq!(visible.len(), 1, "the withdrawn entry is hidden");
        assert_eq!(visible[0].entry.entry, "b");
        let a = log.get("a").expect("a");
        assert_eq!(a.created_at_ms, 1_000);
        assert_eq!(a.updated_at_ms, 3_000);
        assert_eq!(a.revision, 3);
    }

    #[test]
    fn validation_names_every_problem() {
        let mut bad = entry("a", "", false);
        bad.category = "feature".into();
        bad.components = vec!["nope".into()];
        let page = beacon_page::config::load(
            "[page]\nid = \"demo\"\nname = \"Demo\"\n[[components]]\nid = \"api\"\nname = \"API\"\n",
        )
        .expect("config");
        let errors = validate(&bad, Some(&page));
        let locations: Vec<&str> = errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(locations, ["title", "category", "components[0]"]);
        assert!(validate(&entry("a", "ok", false), Some(&page)).is_empty());
    }

    #[test]
    fn images_must_be_what_they_say() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        let ok = ChangelogImage {
            name: "chart.png".into(),
            data_base64: b64(&png),
        };
        assert_eq!(
            decode_images(std::slice::from_ref(&ok)).expect("valid"),
            vec![("chart.png".to_owned(), png)]
        );
        let table = [
            ("chart.svg", b64(b"<svg onload=alert(1)>")),
            ("../x.png", b64(b"\x89PNG\r\n\x1a\n")),
            ("x.png", b64(b"<script>")),
            ("x.png", "%%%".to_owned()),
            ("X.png", b64(b"\x89PNG\r\n\x1a\n")),
            ("noext", b64(b"x")),
        ];
        for (name, data) in table {
            let image = ChangelogImage {
                name: name.into(),
                data_base64: data,
            };
            assert!(decode_images(&[image]).is_err(), "{name}");
        }
    }
}
