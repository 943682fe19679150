//! The dashboard's search of the record: what the form holds, checked and turned into a
//! `/api/history/connections` URL (the answer shown in the page, or downloaded as CSV, NDJSON
//! or HAR). Pure, so it is tested natively.

use crate::protocol::close_code::CloseClass;
use crate::protocol::HistoryConn;
use serde::Deserialize;

/// Rows asked for when the answer is shown in the page.
pub(crate) const SHOWN_ROWS: u32 = 100;

/// The form. Times are ms since the epoch (the browser reads its local-time inputs).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct HistorySearch {
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// all, open or closed.
    pub state: String,
    /// A close code (`1006`) or class (`abnormal`); empty for any.
    pub close: String,
    pub source: String,
    /// An address or a CIDR prefix.
    pub ip: String,
    /// Text in the address, user agent, path or source.
    pub text: String,
}

/// What the observer answers.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub(crate) struct HistoryAnswer {
    pub items: Vec<HistoryConn>,
    #[serde(default)]
    pub truncated: bool,
}

impl HistorySearch {
    /// The URL of this search: shown in the page (`format` None, [`SHOWN_ROWS`] rows) or
    /// downloaded (`csv`, `ndjson`, `har`). An error says which field is wrong and why.
    pub(crate) fn url(&self, format: Option<&str>) -> Result<String, String> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let (Some(f), Some(t)) = (self.from_ms, self.to_ms) {
            if f > t {
                return Err("“from” is after “to”".into());
            }
        }
        if let Some(f) = self.from_ms {
            q.append_pair("from", &f.to_string());
        }
        if let Some(t) = self.to_ms {
            q.append_pair("to", &t.to_string());
        }
        match self.state.as_str() {
            "" | "all" => {}
            s @ ("open" | "closed") => {
                q.append_pair("state", s);
            }
            s => return Err(format!("state {s:?} is not all, open or closed")),
        }
        let close = self.close.trim();
        if close.bytes().all(|b| b.is_ascii_digit()) && !close.is_empty() {
            if !close
                .parse::<u16>()
                .is_ok_and(|c| (1000..=4999).contains(&c))
            {
                return Err(format!("close code {close} is not between 1000 and 4999"));
            }
            q.append_pair("code", close);
        } else if !close.is_empty() {
            if CloseClass::from_label(close).is_none() {
                return Err(format!(
                    "close {close:?} is neither a code (1006) nor a class ({})",
                    CloseClass::labels()
                ));
            }
            q.append_pair("class", close);
        }
        for (key, value) in [
            ("source", &self.source),
            ("ip", &self.ip),
            ("q", &self.text),
        ] {
            let v = value.trim();
            if !v.is_empty() {
                q.append_pair(key, v);
            }
        }
        match format {
            None => {
                q.append_pair("limit", &SHOWN_ROWS.to_string());
            }
            Some(f @ ("csv" | "ndjson" | "har")) => {
                q.append_pair("format", f);
            }
            Some(f) => return Err(format!("format {f:?} is not csv, ndjson or har")),
        }
        Ok(format!("/api/history/connections?{}", q.finish()))
    }
}

/// A `datetime-local` value read as UTC (`2026-12-03T02:10` or `…T02:10:30`), ms since the
/// epoch; None when it is not one.
pub(crate) fn parse_utc(s: &str) -> Option<u64> {
    let (date, time) = s.trim().trim_end_matches('Z').split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let h: i64 = t.next()?.parse().ok()?;
    let min: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next().map_or(Some(0.0), |x| x.parse().ok())?;
    let valid = (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..24).contains(&h)
        && (0..60).contains(&min)
        && (0.0..60.0).contains(&sec);
    if !valid || y < 1970 {
        return None;
    }
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = (days * 86_400 + h * 3600 + min * 60) * 1000 + (sec * 1000.0) as i64;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_read_as_utc() {
        assert_eq!(parse_utc("2023-11-14T22:13:20"), Some(1_700_000_000_000));
        assert_eq!(parse_utc("2023-11-14T22:13"), Some(1_699_999_980_000));
        assert_eq!(parse_utc("2024-02-29T00:00:00.5"), Some(1_709_164_800_500));
        assert_eq!(parse_utc("1970-01-01T00:00"), Some(0));
        // What the dashboard shows, it reads back.
        let ms = parse_utc("2026-12-03T02:14:07").unwrap();
        assert!(crate::dashboard::format::clock(ms).starts_with("2026-12-03 02:14:07"));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00",
            "2026-12-03",
            "2026-12-03T25:00",
            "1969-12-31T23:59",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_search_becomes_its_url() {
        let s = HistorySearch {
            from_ms: Some(1_000),
            to_ms: Some(2_000),
            state: "closed".into(),
            close: "1006".into(),
            source: " edge 1 ".into(),
            ip: "10.1.0.0/16".into(),
            text: "chat&x=1".into(),
        };
        assert_eq!(
            s.url(None).unwrap(),
            "/api/history/connections?from=1000&to=2000&state=closed&code=1006&source=edge+1&ip=10.1.0.0%2F16&q=chat%26x%3D1&limit=100"
        );
        assert!(s.url(Some("csv")).unwrap().ends_with("&format=csv"));
        assert_eq!(
            HistorySearch::default().url(Some("har")).unwrap(),
            "/api/history/connections?format=har"
        );
        let class = HistorySearch {
            close: "abnormal".into(),
            ..HistorySearch::default()
        };
        assert!(class.url(None).unwrap().contains("class=abnormal"));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |s: HistorySearch, says: &str| {
            let e = s.url(None).unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        bad(
            HistorySearch {
                from_ms: Some(5),
                to_ms: Some(4),
                ..Default::default()
            },
            "after",
        );
        bad(
            HistorySearch {
                close: "999".into(),
                ..Default::default()
            },
            "between 1000 and 4999",
        );
        bad(
            HistorySearch {
                close: "weird".into(),
                ..Default::default()
            },
            "abnormal",
        );
        bad(
            HistorySearch {
                state: "gone".into(),
                ..Default::default()
            },
            "open or closed",
        );
        assert!(HistorySearch::default().url(Some("xml")).is_err());
    }

    #[test]
    fn the_answer_parses() {
        let a: HistoryAnswer = serde_json::from_str(
            r#"{"items":[{"source":"edge","conn":2,"ip":"192.0.2.2","user_agent":"","path":"/c",
            "opened_ms":1,"closed_ms":2,"close_code":1006,"close_reason":null,"closed_by":"abort",
            "msgs_in":5,"msgs_out":0,"bytes_in":20,"bytes_out":0,"last_messages":[]}],
            "truncated":false,"scanned_events":0}"#,
        )
        .unwrap();
        assert_eq!(a.items[0].close_code, Some(1006));
    }
}
