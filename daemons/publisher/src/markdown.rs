//! Markdown written by operators, rendered to HTML that cannot run
//! anything: pulldown-cmark renders, ammonia keeps only an allow-list of
//! tags and attributes. Scripts, event-handler attributes, `style`, and
//! URLs other than `http`, `https`, `mailto` and relative ones are removed;
//! images may only come from the page itself (relative URLs), because the
//! page makes no request to another origin.

use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use pulldown_cmark::{html, Options, Parser};

/// Renders `text` (CommonMark with tables and strikethrough) to sanitized HTML.
pub fn to_safe_html(text: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut unsafe_html = String::with_capacity(text.len() * 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(text, options));
    sanitizer().clean(&unsafe_html).to_string()
}

fn sanitizer() -> Builder<'static> {
    let tags: HashSet<&str> = [
        "a",
        "p",
        "br",
        "hr",
        "em",
        "strong",
        "del",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "img",
    ]
    .into_iter()
    .collect();
    let mut builder = Builder::default();
    builder
        .tags(tags)
        .tag_attributes(
            [
                ("a", ["href", "title"].into_iter().collect()),
                ("img", ["src", "alt", "title"].into_iter().collect()),
            ]
            .into_iter()
            .collect(),
        )
        .generic_attributes(HashSet::new())
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .url_relative(UrlRelative::PassThrough)
        .link_rel(Some("noopener noreferrer nofollow"))
        .attribute_filter(|element, attribute, value| {
            // An image from another origin would be a request to it.
            if element == "img" && attribute == "src" && !is_same_origin_path(value) {
                return None;
            }
            Some(value.into())
        });
    builder
}

/// A relative path without a scheme or authority: `assets/x.png`, not
/// `//host/x.png` or `https://host/x.png`.
fn is_same_origin_path(url: &str) -> bool {
    let url = url.trim();
    !url.starts_with("//")
        && !url.starts_with('\\')
        && !url.contains(':')
        && !url.is_empty()
        && url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
}

/// The first paragraph's text, flattened, for feed summaries and
/// notifications: markdown removed, at most `max` characters.
pub fn plain_summary(text: &str, max: usize) -> String {
    use pulldown_cmark::{Event, Tag, TagEnd};
    let mut out = String::new();
    let mut started = false;
    for event in Parser::new(text) {
        match event {
            Event::Text(t) | Event::Code(t) => {
                started = true;
                out.push_str(&t);
            }
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            Event::Start(Tag::Paragraph) => {}
            Event::End(TagEnd::Paragraph) if started => break,
            _ => {}
        }
    }
    if out.chars().count() > max {
        let cut: String = out.chars().take(max.saturating_sub(1)).collect();
        format!("{}…", cut.trim_end())
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_markdown_comes_out_inert() {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "<script>alert(1)</script>hello",
                &["<script", "alert(1)</"],
                &["hello"],
            ),
            (
                "<img src=x onerror=alert(1)>",
                &["onerror", "alert"],
                &[],
            ),
            (
                "[click](javascript:alert(1))",
                &["javascript:", "alert(1)\""],
                &["click"],
            ),
            (
                "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
                &["avascript", "alert"],
                &[">x</a>"],
            ),
            (
                "<p style=\"background:url(https://evil.example)\" onclick=\"x()\">p</p>",
                &["style", "onclick", "evil"],
                &["<p>p</p>"],
            ),
            (
                "![tracker](https://evil.example/pixel.png)",
                &["evil.example"],
                &["<img", "alt=\"tracker\""],
            ),
            (
                "![chart](assets/chart.png)",
                &[],
                &["<img src=\"assets/chart.png\" alt=\"chart\">"],
            ),
            (
                "<iframe src=\"https://evil.example\"></iframe><svg onload=alert(1)></svg>",
                &["iframe", "svg", "onload"],
                &[],
            ),
            (
                "**bold** and [a link](https://example.com)",
                &[],
                &[
                    "<strong>bold</strong>",
                    "<a href=\"https://example.com\" rel=\"noopener noreferrer nofollow\">a link</a>",
                ],
            ),
        ];
        for (input, absent, present) in table {
            let html = to_safe_html(input);
            for bad in *absent {
                assert!(
                    !html
                        .to_ascii_lowercase()
                        .contains(&bad.to_ascii_lowercase()),
                    "{input:?} -> {html:?} contains {bad:?}"
                );
            }
            for good in *present {
                assert!(html.contains(good), "{input:?} -> {html:?} lacks {good:?}");
            }
        }
    }

    #[test]
    fn summaries_are_plain_and_short() {
        assert_eq!(
            plain_summary("Pages are *faster*.\n\nSecond paragraph.", 100),
            "Pages are faster."
        );
        assert_eq!(plain_summary("abcdefghij", 5), "abcd…");
    }
}
