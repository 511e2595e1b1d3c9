//! The portfolio: every org's posture in one table, as JSON rows ([`PortfolioRow`]) or CSV
//! ([`csv()`](fn@csv)) for a spreadsheet.

use super::posture::{Finding, SeverityCounts, RULES};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortfolioRow {
    pub org_id: String,
    /// `github`, `gitlab`, `azure_devops`.
    pub provider: String,
    /// The org's login or name.
    pub org: String,
    /// The MSP's client the org belongs to, if set.
    pub client: Option<String>,
    pub counts: SeverityCounts,
    /// How many parts of the org's access state are unknown ([`super::model::AccessState::unknown`]).
    pub unknown: usize,
    pub findings: Vec<Finding>,
}

pub const CSV_HEADER: [&str; 10] = [
    "org_id", "provider", "org", "client", "critical", "high", "medium", "low", "unknown", "rules",
];

/// The distinct rule ids of the findings, in the order of [`RULES`] (an id not in the table
/// after them, alphabetically), joined by `;`.
pub fn rule_list(findings: &[Finding]) -> String {
    let mut ids: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    let place = |id: &str| RULES.iter().position(|r| r.id == id).unwrap_or(RULES.len());
    ids.sort_by(|a, b| (place(a), a).cmp(&(place(b), b)));
    ids.dedup();
    ids.join(";")
}

/// A text field made safe for spreadsheets: one that starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be read as a formula by Excel, LibreOffice or Google Sheets (CSV
/// injection), so it gets a leading `'`, which they take as "text" and do not show. A field
/// that already starts with `'` gets one too, so that removing one leading `'` always gives the
/// value back. Counts are never negative: only text fields (ids, org, client) are concerned.
pub fn neutralize(field: &str) -> String {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        format!("'{field}")
    } else {
        field.to_string()
    }
}

/// The portfolio as CSV (RFC 4180: CRLF line ends; a field with a comma, a double quote, CR or
/// LF is quoted, its quotes doubled): the header `org_id,provider,org,client,critical,high,
/// medium,low,unknown,rules`, then one line per org (`client` empty when unset; `rules`:
/// [`rule_list`]). Text fields are [`neutralize`]d against formula injection.
pub fn csv(rows: &[PortfolioRow]) -> String {
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .quote_style(::csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    // Writing to memory cannot fail, and every record has the header's 10 fields.
    writer.write_record(CSV_HEADER).expect("CSV to memory");
    for row in rows {
        let c = row.counts;
        writer
            .write_record([
                neutralize(&row.org_id),
                neutralize(&row.provider),
                neutralize(&row.org),
                neutralize(row.client.as_deref().unwrap_or("")),
                c.critical.to_string(),
                c.high.to_string(),
                c.medium.to_string(),
                c.low.to_string(),
                row.unknown.to_string(),
                neutralize(&rule_list(&row.findings)),
            ])
            .expect("CSV to memory");
    }
    let bytes = writer.into_inner().expect("CSV to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::posture::{
        Severity, BACKUP_STALE, DEFAULT_BRANCH_UNPROTECTED, MEMBER_WITHOUT_2FA,
    };

    fn finding(rule: &'static str, subject: &str) -> Finding {
        Finding {
            rule,
            severity: Severity::High,
            subject: subject.into(),
            since: 1,
        }
    }

    fn rows() -> Vec<PortfolioRow> {
        vec![
            PortfolioRow {
                org_id: "org_1".into(),
                provider: "github".into(),
                org: "acme".into(),
                client: Some("Acme, Inc.".into()),
                counts: SeverityCounts {
                    critical: 1,
                    high: 3,
                    medium: 0,
                    low: 0,
                },
                unknown: 2,
                findings: vec![
                    finding(BACKUP_STALE, "acme/api"),
                    finding(MEMBER_WITHOUT_2FA, "bob"),
                    finding(DEFAULT_BRANCH_UNPROTECTED, "acme/web"),
                    finding(MEMBER_WITHOUT_2FA, "carol"),
                ],
            },
            PortfolioRow {
                org_id: "org_2".into(),
                provider: "gitlab".into(),
                org: "the \"quoted\" group\nsecond line".into(),
                client: None,
                counts: SeverityCounts::default(),
                unknown: 0,
                findings: vec![],
            },
            PortfolioRow {
                org_id: "org_3".into(),
                provider: "azure_devops".into(),
                org: "=HYPERLINK(\"http://evil\",\"x\")".into(),
                client: Some("-2+3".into()),
                counts: SeverityCounts::default(),
                unknown: 1,
                findings: vec![],
            },
            PortfolioRow {
                org_id: "org_4".into(),
                provider: "github".into(),
                org: "'@sum".into(),
                client: Some("+cmd|' /C calc'!A0".into()),
                counts: SeverityCounts::default(),
                unknown: 0,
                findings: vec![],
            },
        ]
    }

    #[test]
    fn csv_is_rfc_4180() {
        let out = csv(&rows());
        assert!(out.starts_with(
            "org_id,provider,org,client,critical,high,medium,low,unknown,rules\r\n\
             org_1,github,acme,\"Acme, Inc.\",1,3,0,0,2,member_without_2fa;default_branch_unprotected;backup_stale\r\n\
             org_2,gitlab,\"the \"\"quoted\"\" group\nsecond line\",,0,0,0,0,0,\r\n"
        ), "{out}");
        assert!(out.ends_with("\r\n"));
        assert_eq!(
            csv(&[]),
            "org_id,provider,org,client,critical,high,medium,low,unknown,rules\r\n"
        );
    }

    #[test]
    fn csv_parses_back_to_the_rows() {
        let rows = rows();
        let out = csv(&rows);
        let mut reader = ::csv::Reader::from_reader(out.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(header, CSV_HEADER);
        let records: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), rows.len());
        let text = |field: &str| field.strip_prefix('\'').unwrap_or(field).to_string();
        for (record, row) in records.iter().zip(&rows) {
            let fields: Vec<&str> = record.iter().collect();
            assert_eq!(fields.len(), 10);
            assert_eq!(text(fields[0]), row.org_id);
            assert_eq!(text(fields[1]), row.provider);
            assert_eq!(text(fields[2]), row.org);
            assert_eq!(text(fields[3]), row.client.clone().unwrap_or_default());
            let counts = [
                row.counts.critical,
                row.counts.high,
                row.counts.medium,
                row.counts.low,
                row.unknown,
            ];
            let parsed: Vec<usize> = fields[4..9].iter().map(|n| n.parse().unwrap()).collect();
            assert_eq!(parsed, counts);
            let rules: Vec<&str> = fields[9].split(';').filter(|r| !r.is_empty()).collect();
            let mut expected: Vec<&str> = row.findings.iter().map(|f| f.rule).collect();
            expected.sort();
            expected.dedup();
            let mut got = rules.clone();
            got.sort();
            assert_eq!(got, expected);
        }
        // Formula-looking fields are neutralized, others untouched.
        assert_eq!(&records[2][2], "'=HYPERLINK(\"http://evil\",\"x\")");
        assert_eq!(&records[2][3], "'-2+3");
        assert_eq!(&records[3][2], "''@sum");
        assert_eq!(&records[3][3], "'+cmd|' /C calc'!A0");
        assert_eq!(&records[0][2], "acme");
    }

    #[test]
    fn neutralize_only_formula_starts() {
        for (field, expected) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@x", "'@x"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
            ("", ""),
            ("acme-corp", "acme-corp"),
            ("'quoted", "''quoted"),
        ] {
            assert_eq!(neutralize(field), expected, "{field:?}");
        }
    }

    #[test]
    fn rows_serialize_with_their_field_names() {
        let v = serde_json::to_value(&rows()[0]).unwrap();
        assert_eq!(v["org_id"], "org_1");
        assert_eq!(v["client"], "Acme, Inc.");
        assert_eq!(
            v["counts"],
            serde_json::json!({"critical": 1, "high": 3, "medium": 0, "low": 0})
        );
        assert_eq!(v["unknown"], 2);
        assert_eq!(v["findings"][0]["rule"], "backup_stale");
        assert_eq!(
            serde_json::to_value(&rows()[1]).unwrap()["client"],
            serde_json::Value::Null
        );
    }
}
