//! The model's answers as HTML: Markdown rendered on the server with pulldown-cmark.
//!
//! Invariant: the output holds no markup the text did not get from Markdown syntax. Raw
//! HTML (block or inline) is emitted as escaped text, so a `<script>` in an answer is shown,
//! never run; links keep only `http`, `https` and `mailto` targets (anything else, such as
//! `javascript:`, becomes plain text); images become their alt text (the CSP would not load
//! them anyway).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// Renders an answer's Markdown (tables, strikethrough, task lists) as safe HTML.
pub(crate) fn to_html(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Links dropped for their scheme: their closing tag is dropped too.
    let mut dropped_links: Vec<bool> = Vec::new();
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let safe = safe_url(&dest_url);
            dropped_links.push(!safe);
            safe.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Link) => match dropped_links.pop() {
            Some(false) => Some(Event::End(TagEnd::Link)),
            _ => None,
        },
        // An image's alt text stays, as text.
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
        other => Some(other),
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// Whether a link target may be followed from the page.
fn safe_url(url: &CowStr<'_>) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn markdown_renders_and_raw_html_is_text() {
        let cases = [
            (
                "**bold** and `code`",
                "<p><strong>bold</strong> and <code>code</code></p>\n",
            ),
            (
                "a <script>alert(1)</script> b",
                "<p>a &lt;script&gt;alert(1)&lt;/script&gt; b</p>\n",
            ),
            (
                "<img src=x onerror=alert(1)>",
                "&lt;img src=x onerror=alert(1)&gt;",
            ),
            ("[x](javascript:alert(1))", "<p>x</p>\n"),
            (
                "[docs](https://example.com/a)",
                "<p><a href=\"https://example.com/a\">docs</a></p>\n",
            ),
            (
                "![alt text](https://example.com/i.png)",
                "<p>alt text</p>\n",
            ),
            (
                "| a | b |\n|---|---|\n| 1 | 2 |",
                "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>\n<tr><td>1</td><td>2</td></tr>\n</tbody></table>\n",
            ),
        ];
        for (md, want) in cases {
            let html = to_html(md);
            assert!(html.starts_with(want) || html == want, "{md:?} -> {html:?}");
            assert!(
                !html.contains("<script") && !html.contains("<img"),
                "{html}"
            );
        }
    }
}
