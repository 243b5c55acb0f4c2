//! The condition language of checks, in the spirit of Gatus:
//!
//! ```text
//! [STATUS] == 200                  [STATUS] == any(200, 204)
//! [RESPONSE_TIME] < 300            [RESPONSE_TIME] < 1.5s
//! [CERTIFICATE_EXPIRATION] > 14d   [BODY].status == UP
//! [BODY] contains "all good"       [BODY].version matches "^2\."
//! [HEADER].content-type contains json
//! len([BODY].items) > 0            [PACKET_LOSS] < 20
//! [DNS_RCODE] == NOERROR           [ANSWERS] contains 127.0.0.1
//! ```
//!
//! A condition is `SUBJECT OPERATOR VALUE`. Each is parsed once, when the
//! config is validated or read back from KV, into a typed [`Condition`]:
//! the subject, an operator that suits the subject's type, and a value of
//! that type (a number, a duration, text, a list for `any(…)`, or a
//! compiled regex). A condition that cannot be parsed is a config error
//! naming the column. [`Condition::evaluate`] is pure: it reads an
//! [`Observation`] and says whether the condition holds, and if not, what
//! was seen instead.
//!
//! A condition travels (in KV `config`) as the text it was written as, and
//! is parsed again when read, so the stored form is what operators wrote.

use std::cell::OnceCell;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest condition accepted, in bytes.
pub const MAX_LEN: usize = 1024;

/// A value a condition can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `[STATUS]`: the HTTP status code.
    Status,
    /// `[RESPONSE_TIME]`: the whole run, as a duration.
    ResponseTime,
    /// `[BODY]`: the response body (HTTP), or a path into it as JSON.
    Body,
    /// `[HEADER].name`: a response header (HTTP).
    Header,
    /// `[CERTIFICATE_EXPIRATION]`: time left until the TLS certificate expires.
    CertificateExpiration,
    /// `[BANNER]`: what a TCP server sent first.
    Banner,
    /// `[PACKET_LOSS]`: percent of ICMP echoes without a reply.
    PacketLoss,
    /// `[RTT]`: average ICMP round trip.
    Rtt,
    /// `[DNS_RCODE]`: the DNS response code, e.g. `NOERROR`.
    DnsRcode,
    /// `[ANSWERS]`: the DNS answers, as text joined by `,`.
    Answers,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Placeholder; 10] = [
        Placeholder::Status,
        Placeholder::ResponseTime,
        Placeholder::Body,
        Placeholder::Header,
        Placeholder::CertificateExpiration,
        Placeholder::Banner,
        Placeholder::PacketLoss,
        Placeholder::Rtt,
        Placeholder::DnsRcode,
        Placeholder::Answers,
    ];

    /// The name as written, e.g. `[STATUS]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placeholder::Status => "[STATUS]",
            Placeholder::ResponseTime => "[RESPONSE_TIME]",
            Placeholder::Body => "[BODY]",
            Placeholder::Header => "[HEADER]",
            Placeholder::CertificateExpiration => "[CERTIFICATE_EXPIRATION]",
            Placeholder::Banner => "[BANNER]",
            Placeholder::PacketLoss => "[PACKET_LOSS]",
            Placeholder::Rtt => "[RTT]",
            Placeholder::DnsRcode => "[DNS_RCODE]",
            Placeholder::Answers => "[ANSWERS]",
        }
    }

    fn value_type(self) -> ValueType {
        match self {
            Placeholder::Status | Placeholder::PacketLoss => ValueType::Number,
            Placeholder::ResponseTime | Placeholder::CertificateExpiration | Placeholder::Rtt => {
                ValueType::Duration
            }
            Placeholder::Body
            | Placeholder::Header
            | Placeholder::Banner
            | Placeholder::DnsRcode
            | Placeholder::Answers => ValueType::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Number,
    Duration,
    Text,
}

/// One step of a path into a JSON body: `.key` or `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// What a condition looks at: a placeholder, with a JSON path (`[BODY]`)
/// or a header name (`[HEADER]`), optionally wrapped in `len(…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The placeholder.
    pub placeholder: Placeholder,
    /// `[BODY].a.b[0]`: the path; empty for the whole body.
    pub path: Vec<PathStep>,
    /// `[HEADER].name`: the header, lowercase.
    pub header: Option<String>,
    /// `len(…)`: compare the length instead of the value.
    pub len: bool,
}

impl Subject {
    fn value_type(&self) -> ValueType {
        if self.len {
            ValueType::Number
        } else {
            self.placeholder.value_type()
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains` (text)
    Contains,
    /// `!contains` (text)
    NotContains,
    /// `matches` (text against a regex)
    Matches,
    /// `!matches`
    NotMatches,
}

impl Operator {
    const WORDS: [(&'static str, Operator); 10] = [
        ("==", Operator::Eq),
        ("!=", Operator::Ne),
        ("<=", Operator::Le),
        (">=", Operator::Ge),
        ("<", Operator::Lt),
        (">", Operator::Gt),
        ("contains", Operator::Contains),
        ("!contains", Operator::NotContains),
        ("matches", Operator::Matches),
        ("!matches", Operator::NotMatches),
    ];

    /// As written, e.g. `<=`.
    pub fn as_str(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(word, _)| word)
    }

    fn is_ordering(self) -> bool {
        matches!(
            self,
            Operator::Lt | Operator::Le | Operator::Gt | Operator::Ge
        )
    }
}

/// The right-hand side, typed for its subject.
#[derive(Debug, Clone)]
pub enum Expected {
    /// A number (`200`, `20.5`).
    Number(f64),
    /// A duration (`300` meaning milliseconds, `1.5s`, `14d`).
    Duration(Duration),
    /// Text (`UP`, `"all good"`).
    Text(String),
    /// `any(a, b, …)`: equal to one of these.
    AnyNumber(Vec<f64>),
    /// `any(a, b, …)` for text.
    AnyText(Vec<String>),
    /// A compiled regex for `matches`.
    Regex(regex::Regex),
}

/// A parsed condition. Equal when the text is equal.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    subject: Subject,
    operator: Operator,
    expected: Expected,
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Why a condition could not be parsed, with the 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// Column (in characters, from 1) where the problem is.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

fn error(column: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        column,
        message: message.into(),
    }
}

/// Everything a run observed that a condition may look at. A field that
/// does not apply is `None`; a condition on it then fails as missing.
#[derive(Debug, Default)]
pub struct Observation<'a> {
    /// HTTP status.
    pub status: Option<u16>,
    /// The run's duration.
    pub response_time: Option<Duration>,
    /// The body, as read (capped by the check's `max_body`).
    pub body: Option<&'a [u8]>,
    /// Response headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Time left until the certificate expires (negative: expired), in ms.
    pub certificate_expires_in_ms: Option<i64>,
    /// What the TCP server sent.
    pub banner: Option<&'a [u8]>,
    /// ICMP loss in percent.
    pub packet_loss_percent: Option<f64>,
    /// ICMP average round trip.
    pub rtt: Option<Duration>,
    /// DNS response code.
    pub dns_rcode: Option<&'a str>,
    /// DNS answers.
    pub answers: Option<&'a [String]>,
    /// The body parsed as JSON, once, when a path first needs it; leave
    /// it empty (`Default`).
    pub json: OnceCell<Option<serde_json::Value>>,
}

/// A value read from an observation.
enum Seen {
    Number(f64),
    Duration(i64),
    Text(String),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Number(n) => write!(f, "{n}"),
            Seen::Duration(ms) if *ms < 0 => write!(f, "-{}", format_ms(ms.unsigned_abs())),
            Seen::Duration(ms) => write!(f, "{}", format_ms(ms.unsigned_abs())),
            Seen::Text(t) => {
                let shown: String = t.chars().take(80).collect();
                if shown.len() < t.len() {
                    write!(f, "{shown:?}…")
                } else {
                    write!(f, "{shown:?}")
                }
            }
        }
    }
}

fn format_ms(ms: u64) -> String {
    if ms >= 86_400_000 {
        format!("{:.1}d", ms as f64 / 86_400_000.0)
    } else if ms >= 1_000 {
        format!("{:.3}s", ms as f64 / 1_000.0)
    } else {
        format!("{ms}ms")
    }
}

impl Condition {
    /// Parses one condition.
    pub fn parse(text: &str) -> Result<Condition, ParseError> {
        Parser::new(text).condition()
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The placeholder it looks at.
    pub fn placeholder(&self) -> Placeholder {
        self.subject.placeholder
    }

    /// The parsed subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The expected value.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// Whether the condition holds for `seen`; if not, what was seen
    /// (`[STATUS] was 503`, `[BODY].status is missing`).
    pub fn evaluate(&self, seen: &Observation<'_>) -> Result<(), String> {
        let name = self.subject_text();
        let Some(value) = self.read(seen) else {
            return Err(format!("{name} is missing"));
        };
        let holds = match (&value, &self.expected) {
            (Seen::Number(n), Expected::Number(want)) => compare(self.operator, *n, *want),
            (Seen::Number(n), Expected::AnyNumber(wants)) => {
                let found = wants.iter().any(|w| n == w);
                found == (self.operator == Operator::Eq)
            }
            (Seen::Duration(ms), Expected::Duration(want)) => {
                compare(self.operator, *ms as f64, want.as_millis() as f64)
            }
            (Seen::Text(text), Expected::Text(want)) => match self.operator {
                Operator::Eq => text == want,
                Operator::Ne => text != want,
                Operator::Contains => text.contains(want.as_str()),
                Operator::NotContains => !text.contains(want.as_str()),
                op if op.is_ordering() => match (text.trim().parse::<f64>(), want.parse::<f64>()) {
                    (Ok(n), Ok(w)) => compare(op, n, w),
                    _ => false,
                },
                _ => false,
            },
            (Seen::Text(text), Expected::AnyText(wants)) => {
                let found = wants.iter().any(|w| w == text);
                found == (self.operator == Operator::Eq)
            }
            (Seen::Text(text), Expected::Regex(re)) => {
                re.is_match(text) == (self.operator == Operator::Matches)
            }
            // The parser only builds matching pairs.
            _ => false,
        };
        if holds {
            Ok(())
        } else {
            Err(format!("{name} was {value}"))
        }
    }

    /// What the condition's subject was in `seen`, e.g. `[RESPONSE_TIME]
    /// was 450ms`, whether or not the condition holds.
    pub fn describe_seen(&self, seen: &Observation<'_>) -> String {
        match self.read(seen) {
            Some(value) => format!("{} was {value}", self.subject_text()),
            None => format!("{} is missing", self.subject_text()),
        }
    }

    fn subject_text(&self) -> String {
        let mut text = self.subject.placeholder.as_str().to_owned();
        if let Some(header) = &self.subject.header {
            text.push('.');
            text.push_str(header);
        }
        for step in &self.subject.path {
            match step {
                PathStep::Key(key) => {
                    text.push('.');
                    text.push_str(key);
                }
                PathStep::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        if self.subject.len {
            format!("len({text})")
        } else {
            text
        }
    }

    fn read(&self, seen: &Observation<'_>) -> Option<Seen> {
        let subject = &self.subject;
        let text = match subject.placeholder {
            Placeholder::Status => return seen.status.map(|s| Seen::Number(f64::from(s))),
            Placeholder::PacketLoss => return seen.packet_loss_percent.map(Seen::Number),
            Placeholder::ResponseTime => {
                return seen
                    .response_time
                    .map(|d| Seen::Duration(d.as_millis() as i64))
            }
            Placeholder::Rtt => return seen.rtt.map(|d| Seen::Duration(d.as_millis() as i64)),
            Placeholder::CertificateExpiration => {
                return seen.certificate_expires_in_ms.map(Seen::Duration)
            }
            Placeholder::Body if !subject.path.is_empty() => {
                let json = seen
                    .json
                    .get_or_init(|| seen.body.and_then(|b| serde_json::from_slice(b).ok()));
                let mut value = json.as_ref()?;
                for step in &subject.path {
                    value = match step {
                        PathStep::Key(key) => value.get(key)?,
                        PathStep::Index(i) => value.get(*i)?,
                    };
                }
                if subject.len {
                    let len = match value {
                        serde_json::Value::Array(items) => items.len(),
                        serde_json::Value::Object(map) => map.len(),
                        serde_json::Value::String(s) => s.chars().count(),
                        _ => return None,
                    };
                    return Some(Seen::Number(len as f64));
                }
                match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            }
            Placeholder::Body => String::from_utf8_lossy(seen.body?).into_owned(),
            Placeholder::Banner => String::from_utf8_lossy(seen.banner?).into_owned(),
            Placeholder::Header => {
                let name = subject.header.as_deref()?;
                seen.headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())?
            }
            Placeholder::DnsRcode => seen.dns_rcode?.to_owned(),
            Placeholder::Answers => seen.answers?.join(","),
        };
        if subject.len {
            Some(Seen::Number(text.chars().count() as f64))
        } else {
            Some(Seen::Text(text))
        }
    }
}

fn compare(op: Operator, seen: f64, want: f64) -> bool {
    match op {
        Operator::Eq => seen == want,
        Operator::Ne => seen != want,
        Operator::Lt => seen < want,
        Operator::Le => seen <= want,
        Operator::Gt => seen > want,
        Operator::Ge => seen >= want,
        _ => false,
    }
}

/// A hand-written recursive-descent parser over the characters of one
/// condition; every error names its column.
struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            chars: text.chars().collect(),
            at: 0,
        }
    }

    fn column(&self) -> usize {
        self.at + 1
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        let n = word.chars().count();
        let matches = self.chars.len() >= self.at + n
            && self.chars[self.at..self.at + n]
                .iter()
                .copied()
                .eq(word.chars());
        if matches {
            self.at += n;
        }
        matches
    }

    fn condition(mut self) -> Result<Condition, ParseError> {
        if self.text.len() > MAX_LEN {
            return Err(error(1, format!("longer than {MAX_LEN} bytes")));
        }
        self.skip_spaces();
        if self.peek().is_none() {
            return Err(error(1, "empty condition; write e.g. \"[STATUS] == 200\""));
        }
        let subject = self.subject()?;
        self.skip_spaces();
        let operator_column = self.column();
        let operator = self.operator()?;
        self.skip_spaces();
        let value_column = self.column();
        let rest: String = self.chars[self.at..].iter().collect();
        let rest = rest.trim_end();
        if rest.is_empty() {
            return Err(error(
                value_column,
                format!("nothing after {:?}; expected a value", operator.as_str()),
            ));
        }
        let expected = typed_value(&subject, operator, operator_column, value_column, rest)?;
        Ok(Condition {
            text: self.text.to_owned(),
            subject,
            operator,
            expected,
        })
    }

    fn subject(&mut self) -> Result<Subject, ParseError> {
        let len = self.eat("len(");
        let start = self.column();
        if self.peek() != Some('[') {
            return Err(error(
                start,
                "a condition starts with a placeholder such as [STATUS], [BODY] or [RESPONSE_TIME]",
            ));
        }
        let name: String = self.chars[self.at..]
            .iter()
            .take_while(|c| **c != ']')
            .collect();
        let name = format!("{name}]");
        let Some(placeholder) = Placeholder::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == name)
        else {
            let known = Placeholder::ALL.map(Placeholder::as_str).join(", ");
            return Err(error(
                start,
                format!("unknown placeholder {name}; expected one of {known}"),
            ));
        };
        self.at += name.chars().count();
        let mut subject = Subject {
            placeholder,
            path: Vec::new(),
            header: None,
            len,
        };
        match placeholder {
            Placeholder::Body => subject.path = self.path()?,
            Placeholder::Header => {
                let column = self.column();
                if !self.eat(".") {
                    return Err(error(
                        column,
                        "[HEADER] needs a name, e.g. [HEADER].content-type",
                    ));
                }
                let name: String = self.chars[self.at..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '-' || **c == '_')
                    .collect();
                if name.is_empty() {
                    return Err(error(
                        self.column(),
                        "a header name is letters, digits and '-'",
                    ));
                }
                self.at += name.len();
                subject.header = Some(name.to_ascii_lowercase());
            }
            _ => {}
        }
        if len {
            let column = self.column();
            if !self.eat(")") {
                return Err(error(column, "len( is not closed with )"));
            }
            if subject.placeholder.value_type() != ValueType::Text {
                return Err(error(
                    start,
                    format!("len() takes text, not {}", placeholder.as_str()),
                ));
            }
        }
        if let Some(c) = self.peek().filter(|c| !c.is_whitespace()) {
            return Err(error(
                self.column(),
                format!("unexpected {c:?} after the placeholder"),
            ));
        }
        Ok(subject)
    }

    fn path(&mut self) -> Result<Vec<PathStep>, ParseError> {
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.at += 1;
                    let key: String = self.chars[self.at..]
                        .iter()
                        .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == '-')
                        .collect();
                    if key.is_empty() {
                        return Err(error(self.column(), "expected a key after '.'"));
                    }
                    self.at += key.chars().count();
                    path.push(PathStep::Key(key));
                }
                Some('[') => {
                    let column = self.column();
                    self.at += 1;
                    let digits: String = self.chars[self.at..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    self.at += digits.len();
                    let index = digits.parse::<usize>().ok().filter(|_| self.eat("]"));
                    match index {
                        Some(index) => path.push(PathStep::Index(index)),
                        None => return Err(error(column, "expected an index like [0]")),
                    }
                }
                _ => return Ok(path),
            }
        }
    }

    fn operator(&mut self) -> Result<Operator, ParseError> {
        let column = self.column();
        let word: String = self.chars[self.at..]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .collect();
        match Operator::WORDS.iter().find(|(w, _)| *w == word) {
            Some((w, op)) => {
                self.at += w.chars().count();
                Ok(*op)
            }
            None if word.is_empty() => Err(error(
                column,
                "expected an operator (==, !=, <, <=, >, >=, contains, matches)",
            )),
            None => Err(error(
                column,
                format!(
                    "unknown operator {word:?}; expected ==, !=, <, <=, >, >=, contains, !contains, matches or !matches"
                ),
            )),
        }
    }
}

/// Reads the right-hand side as the type the subject and operator need.
fn typed_value(
    subject: &Subject,
    operator: Operator,
    operator_column: usize,
    column: usize,
    text: &str,
) -> Result<Expected, ParseError> {
    let kind = subject.value_type();
    let name = subject.placeholder.as_str();
    let text_only = matches!(
        operator,
        Operator::Contains | Operator::NotContains | Operator::Matches | Operator::NotMatches
    );
    if text_only && kind != ValueType::Text {
        return Err(error(
            operator_column,
            format!(
                "{:?} compares text; {name} is a {}",
                operator.as_str(),
                type_name(kind)
            ),
        ));
    }
    if let Some(inner) = text.strip_prefix("any(") {
        if !matches!(operator, Operator::Eq | Operator::Ne) {
            return Err(error(column, "any(…) goes with == or !="));
        }
        let Some(inner) = inner.strip_suffix(')') else {
            return Err(error(column, "any( is not closed with )"));
        };
        let items: Vec<&str> = inner.split(',').map(str::trim).collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(error(column, "any(…) needs values separated by commas"));
        }
        return match kind {
            ValueType::Number => items
                .iter()
                .map(|i| number(column, i))
                .collect::<Result<_, _>>()
                .map(Expected::AnyNumber),
            ValueType::Text => Ok(Expected::AnyText(
                items.iter().map(|i| unquote(i).to_owned()).collect(),
            )),
            ValueType::Duration => Err(error(column, format!("any(…) does not apply to {name}"))),
        };
    }
    let value = unquoted(column, text)?;
    match (kind, operator) {
        (ValueType::Number, _) => number(column, &value).map(Expected::Number),
        (ValueType::Duration, Operator::Eq | Operator::Ne) => Err(error(
            operator_column,
            format!("{name} is a duration: compare it with <, <=, > or >="),
        )),
        (ValueType::Duration, _) => duration(column, &value).map(Expected::Duration),
        (ValueType::Text, Operator::Matches | Operator::NotMatches) => {
            regex::RegexBuilder::new(&value)
                .size_limit(1 << 20)
                .build()
                .map(Expected::Regex)
                .map_err(|e| {
                    error(
                        column,
                        format!("invalid regex: {}", first_line(&e.to_string())),
                    )
                })
        }
        (ValueType::Text, op) if op.is_ordering() => {
            number(column, &value)?;
            Ok(Expected::Text(value))
        }
        (ValueType::Text, _) => Ok(Expected::Text(value)),
    }
}

fn type_name(kind: ValueType) -> &'static str {
    match kind {
        ValueType::Number => "number",
        ValueType::Duration => "duration",
        ValueType::Text => "text",
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
}

fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// A bare value as is, or a double-quoted one where `\"` is a quote and
/// `\\` a backslash; any other backslash is kept, so regexes such as
/// `"^2\."` read as written.
fn unquoted(column: usize, text: &str) -> Result<String, ParseError> {
    let Some(inner) = text.strip_prefix('"') else {
        return Ok(text.to_owned());
    };
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(c @ ('"' | '\\')) => value.push(c),
                Some(c) => {
                    value.push('\\');
                    value.push(c);
                }
                None => value.push('\\'),
            },
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(value)
                } else {
                    Err(error(column, "unexpected text after the closing quote"))
                }
            }
            c => value.push(c),
        }
    }
    Err(error(column, "the quote is not closed"))
}

fn number(column: usize, text: &str) -> Result<f64, ParseError> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| error(column, format!("{text:?} is not a number")))
}

/// `300` (milliseconds), `1.5s`, `14d`, `2h30m`.
fn duration(column: usize, text: &str) -> Result<Duration, ParseError> {
    if let Ok(ms) = text.parse::<f64>() {
        if (0.0..1e15).contains(&ms) {
            return Ok(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    if let Some(seconds) = text.strip_suffix('s').and_then(|t| t.parse::<f64>().ok()) {
        if (0.0..1e12).contains(&seconds) {
            return Ok(Duration::from_secs_f64(seconds));
        }
    }
    humantime::parse_duration(text).map_err(|_| {
        error(
            column,
            format!("{text:?} is not a duration; write e.g. 300 (ms), 1.5s, 48h or 14d"),
        )
    })
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Condition::parse(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

impl JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A condition such as \"[STATUS] == 200\" or \"[BODY].status == UP\"",
            "maxLength": MAX_LEN
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seen() -> Observation<'static> {
        Observation {
            status: Some(200),
            response_time: Some(Duration::from_millis(120)),
            body: Some(br#"{"status":"UP","items":[1,2,3],"version":"2.4.1","count":7,"nested":{"ok":true}}"#),
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            certificate_expires_in_ms: Some(10 * 86_400_000),
            banner: None,
            packet_loss_percent: None,
            rtt: None,
            dns_rcode: None,
            answers: None,
            json: OnceCell::new(),
        }
    }

    #[test]
    fn conditions_evaluate_as_written() {
        let table: &[(&str, bool)] = &[
            ("[STATUS] == 200", true),
            ("[STATUS] != 200", false),
            ("[STATUS] < 300", true),
            ("[STATUS] >= 500", false),
            ("[STATUS] == any(201, 200)", true),
            ("[STATUS] != any(500, 503)", true),
            ("[RESPONSE_TIME] < 300", true),
            ("[RESPONSE_TIME] < 100ms", false),
            ("[RESPONSE_TIME] <= 0.12s", true),
            ("[CERTIFICATE_EXPIRATION] > 14d", false),
            ("[CERTIFICATE_EXPIRATION] > 7d", true),
            ("[BODY].status == UP", true),
            ("[BODY].status == \"DOWN\"", false),
            ("[BODY].nested.ok == true", true),
            ("[BODY].items[1] == 2", true),
            ("[BODY].count > 5", true),
            ("[BODY].count < 5", false),
            ("len([BODY].items) == 3", true),
            ("len([BODY].items) > 3", false),
            ("[BODY] contains \"UP\"", true),
            ("[BODY] !contains DOWN", true),
            ("[BODY].version matches \"^2\\.\"", true),
            ("[BODY].version !matches ^2", false),
            ("[BODY].status == any(UP, OK)", true),
            ("[HEADER].Content-Type contains json", true),
            ("[HEADER].x-missing == a", false),
            ("[BODY].missing == a", false),
            ("[PACKET_LOSS] < 10", false),
        ];
        for (text, want) in table {
            let condition = Condition::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(condition.evaluate(&seen()).is_ok(), *want, "{text}");
        }
    }

    #[test]
    fn a_failure_says_what_was_seen() {
        let condition = Condition::parse("[STATUS] == 503").expect("parses");
        assert_eq!(
            condition.evaluate(&seen()),
            Err("[STATUS] was 200".to_owned())
        );
        let condition = Condition::parse("[BODY].gone == x").expect("parses");
        assert_eq!(
            condition.evaluate(&seen()),
            Err("[BODY].gone is missing".to_owned())
        );
        let condition = Condition::parse("[CERTIFICATE_EXPIRATION] > 14d").expect("parses");
        assert_eq!(
            condition.evaluate(&seen()),
            Err("[CERTIFICATE_EXPIRATION] was 10.0d".to_owned())
        );
    }

    #[test]
    fn bad_conditions_name_their_column() {
        let table: &[(&str, usize, &str)] = &[
            ("", 1, "empty"),
            ("STATUS == 200", 1, "placeholder"),
            ("[STAUS] == 200", 1, "unknown placeholder"),
            ("[STATUS] = 200", 10, "unknown operator"),
            ("[STATUS] ==", 12, "nothing after"),
            ("[STATUS] == OK", 13, "not a number"),
            ("[STATUS] contains 2", 10, "compares text"),
            ("[RESPONSE_TIME] == 300", 17, "duration"),
            ("[RESPONSE_TIME] < soon", 19, "not a duration"),
            ("[BODY]. == x", 8, "key"),
            ("[BODY].a[x] == 1", 9, "index"),
            ("[BODY] matches \"(\"", 16, "invalid regex"),
            ("[BODY] == \"open", 11, "not closed"),
            ("[HEADER] == x", 9, "needs a name"),
            ("len([STATUS]) > 1", 5, "len() takes text"),
            ("len([BODY] > 1", 11, "not closed"),
            ("[STATUS] == any(200", 13, "not closed"),
            ("[STATUS] < any(200)", 12, "any(…) goes with"),
            ("[BODY].count > many", 16, "not a number"),
            ("[STATUS]x == 1", 9, "unexpected"),
        ];
        for (text, column, message) in table {
            match Condition::parse(text) {
                Ok(c) => panic!("{text:?} parsed as {c:?}"),
                Err(e) => {
                    assert_eq!(e.column, *column, "{text:?}: {e}");
                    assert!(e.message.contains(message), "{text:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn conditions_round_trip_as_their_text() {
        let condition = Condition::parse("[BODY].status == UP").expect("parses");
        let json = serde_json::to_string(&condition).expect("serializes");
        assert_eq!(json, "\"[BODY].status == UP\"");
        let back: Condition = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, condition);
        assert!(serde_json::from_str::<Condition>("\"[NOPE] == 1\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_errors_point_inside(text in any::<String>()) {
            if let Err(e) = Condition::parse(&text) {
                prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{:?}", e);
                prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn plausible_conditions_never_panic_when_evaluated(
            placeholder in prop::sample::select(Placeholder::ALL.to_vec()),
            path in "(\\.[a-z]{1,3}|\\[[0-9]\\]){0,3}",
            op in prop::sample::select(Operator::WORDS.iter().map(|(w, _)| *w).collect::<Vec<_>>()),
            value in "[0-9a-zA-Z.\"*^$()]{0,8}",
            body in proptest::option::of(any::<Vec<u8>>()),
        ) {
            let text = format!("{}{path} {op} {value}", placeholder.as_str());
            if let Ok(condition) = Condition::parse(&text) {
                let seen = Observation { body: body.as_deref(), ..seen() };
                let _ = condition.evaluate(&seen);
            }
        }
    }
}
