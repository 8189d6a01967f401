//! HTML to plain text, for `msg.text` of HTML-only mail and for the HTML
//! error pages of Google's front end. One converter for both: small, linear
//! in its input, and without a dependency that parses the full HTML grammar.

use std::borrow::Cow;

/// Block elements end a line; those that make paragraphs leave a blank line.
fn tag_break(name: &str) -> Option<&'static str> {
    match name {
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "blockquote" | "ul" | "ol"
        | "hr" | "pre" => Some("\n\n"),
        "div" | "tr" | "li" | "dt" | "dd" | "section" | "article" | "header" | "footer"
        | "address" | "center" | "form" => Some("\n"),
        _ => None,
    }
}

/// HTML to readable text: tags dropped (with script, style and head content),
/// entities decoded, white space collapsed, block elements on their own lines.
pub(crate) fn to_text(html: &str) -> String {
    convert(html, &["script", "style", "head", "title", "template"])
}

/// The visible text of a web page (a Google front-end error page): like
/// [`to_text`] but the `<title>` is kept, as it names the error.
pub(crate) fn page_text(html: &str) -> String {
    convert(html, &["script", "style", "template"])
}

/// HTML to text, dropping the content of the `hidden` elements.
fn convert(html: &str, hidden: &[&str]) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    // Elements found unclosed: searching again would make the run quadratic.
    let mut unclosed: Vec<String> = Vec::new();
    while let Some(i) = rest.find(['<', '&']) {
        push_text(&mut out, &rest[..i]);
        let r = &rest[i..];
        if r.starts_with('&') {
            let (decoded, len) = entity(r);
            push_text(&mut out, &decoded);
            rest = &r[len..];
            continue;
        }
        if let Some(comment) = r.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |e| &comment[e + 3..]);
            continue;
        }
        // '<' starts a tag only before a letter, '/', '!' or '?' (as in HTML).
        if !r[1..].starts_with(|c: char| c.is_ascii_alphabetic() || "/!?".contains(c)) {
            push_text(&mut out, "<");
            rest = &r[1..];
            continue;
        }
        let end = tag_end(r);
        let inner = &r[1..end];
        rest = &r[end..];
        let closing = inner.starts_with('/');
        let name = inner.trim_start_matches('/');
        let name =
            name[..name.bytes().take_while(u8::is_ascii_alphanumeric).count()].to_ascii_lowercase();
        match name.as_str() {
            "br" => {
                trim_spaces(&mut out);
                out.push('\n');
            }
            n if hidden.contains(&n) && !closing && !unclosed.contains(&name) => {
                // Without a closing tag the content is shown rather than lost.
                match find_ascii_ci(rest, &format!("</{name}")) {
                    Some(at) => rest = &rest[at..][tag_end(&rest[at..])..],
                    None => unclosed.push(name),
                }
            }
            "td" | "th" => push_text(&mut out, " "),
            _ => {
                if let Some(brk) = tag_break(&name) {
                    line_break(&mut out, brk);
                }
            }
        }
    }
    push_text(&mut out, rest);
    tidy(&out)
}

/// Appends text, collapsing each run of white space to one space.
fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

fn trim_spaces(out: &mut String) {
    out.truncate(out.trim_end_matches(' ').len());
}

/// Ends the current line so that `brk` ("\n" or "\n\n") closes the output.
fn line_break(out: &mut String, brk: &str) {
    trim_spaces(out);
    if out.is_empty() {
        return;
    }
    let have = out.len() - out.trim_end_matches('\n').len();
    for _ in have..brk.len() {
        out.push('\n');
    }
}

/// Lines trimmed, runs of blank lines cut to one, ends trimmed.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank = false;
    }
    out
}

/// Byte index just past the tag's '>' (quoted attribute values may hold
/// '>'), or the end of input for an unclosed tag.
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, b) in s.bytes().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Decodes the entity at the start of `s` ("&..."): its text and length.
/// An unknown or unterminated one stays a literal '&'.
fn entity(s: &str) -> (Cow<'static, str>, usize) {
    let literal = (Cow::Borrowed("&"), 1);
    let Some(semi) = s.bytes().take(12).position(|b| b == b';') else {
        return literal;
    };
    let name = &s[1..semi];
    let text: Cow<'static, str> = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => num.parse(),
        };
        let Ok(code) = code else { return literal };
        let c = char::from_u32(code)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{FFFD}');
        c.to_string().into()
    } else {
        Cow::Borrowed(match name {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            "apos" => "'",
            "nbsp" | "ensp" | "emsp" | "thinsp" => " ",
            "shy" | "zwnj" | "zwj" => "",
            "copy" => "©",
            "reg" => "®",
            "trade" => "™",
            "hellip" => "…",
            "mdash" => "—",
            "ndash" => "–",
            "lsquo" => "‘",
            "rsquo" => "’",
            "ldquo" => "“",
            "rdquo" => "”",
            "laquo" => "«",
            "raquo" => "»",
            "bull" => "•",
            "middot" => "·",
            "euro" => "€",
            "pound" => "£",
            "yen" => "¥",
            "cent" => "¢",
            "deg" => "°",
            "times" => "×",
            "divide" => "÷",
            _ => return literal,
        })
    };
    (text, semi + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_stripping() {
        for (html, want) in [
            ("<p>a</p><p>b</p>", "a\n\nb"),
            ("<div>a</div><div>b</div>", "a\nb"),
            ("a<br>b<br/><br />c", "a\nb\n\nc"),
            (
                "  lots \n\t of   <b>white</b>  space ",
                "lots of white space",
            ),
            (
                "&amp; &lt;b&gt; &quot;q&quot; &#39;s&#39; &#x263A; &euro;",
                "& <b> \"q\" 's' ☺ €",
            ),
            (
                "a&nbsp;&nbsp;b &bogus; &#xZZ; & c &amp",
                "a b &bogus; &#xZZ; & c &amp",
            ),
            ("<script>if (a<b) x()</script>ok<style>p{}</style>", "ok"),
            ("<SCRIPT type=x>1</Script>ok", "ok"),
            ("x<!-- hidden <p> -->y<!-- open", "xy"),
            ("<a href=\"a>b\" title='>'>link</a>", "link"),
            ("1 < 2 and 3 <4", "1 < 2 and 3 <4"),
            (
                "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>",
                "a b\nc",
            ),
            ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
            ("<style>never closed", "never closed"),
            ("<unclosed tag", ""),
            ("héllo <i>wörld</i>", "héllo wörld"),
        ] {
            assert_eq!(to_text(html), want, "{html:?}");
        }
    }
    #[test]
    fn page_text_keeps_the_title() {
        let page = "<html><head><title>Error 502</title><style>b{}</style></head><p>Bad";
        assert_eq!(page_text(page), "Error 502\n\nBad");
        assert_eq!(to_text(page), "Bad");
    }

    #[test]
    fn pathological_inputs_stay_linear() {
        let html = "<script>x".repeat(100_000);
        assert!(to_text(&html).len() == 100_000);
    }
}
