//! Page selection and pagination headers, GitHub's and GitLab's.
//!
//! GitHub: `per_page` defaults to 30 and is clamped to 100; `page` defaults to 1. The `Link`
//! header lists `prev`, `next`, `last` and `first` in GitHub's order and is omitted when every
//! item fits on one page.
//!
//! GitLab offset pagination: `per_page` defaults to 20 (clamped to 100); `X-Page`,
//! `X-Per-Page`, `X-Total`, `X-Total-Pages`, `X-Next-Page` and `X-Prev-Page` (empty when there
//! is none) and a `Link` header with `prev`/`next` when they exist and always `first` and
//! `last`. Its links repeat the request's query parameters sorted by name, as GitLab's do;
//! [`gitlab_link`] builds them, for keyset pagination's `rel="next"` too.

use std::collections::BTreeMap;
use std::ops::Range;

pub const DEFAULT_PER_PAGE: usize = 30;
pub const GITLAB_DEFAULT_PER_PAGE: usize = 20;
pub const MAX_PER_PAGE: usize = 100;

/// A requested page, already normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub per_page: usize,
    pub page: usize,
}

impl Page {
    /// Reads `per_page` and `page` query values; missing, unparsable or zero values fall
    /// back to the defaults, and `per_page` above 100 is clamped to 100.
    pub fn from_query(per_page: Option<&str>, page: Option<&str>) -> Self {
        Page::with_default(per_page, page, DEFAULT_PER_PAGE)
    }

    /// Like [`Page::from_query`] with another default `per_page`.
    pub fn with_default(per_page: Option<&str>, page: Option<&str>, default: usize) -> Self {
        let positive = |v: Option<&str>| v.and_then(|s| s.parse::<usize>().ok()).filter(|&n| n > 0);
        Page {
            per_page: positive(per_page).unwrap_or(default).min(MAX_PER_PAGE),
            page: positive(page).unwrap_or(1),
        }
    }

    /// Index range of this page within `total` items (empty past the end).
    pub fn range(&self, total: usize) -> Range<usize> {
        let start = self.per_page.saturating_mul(self.page - 1).min(total);
        start..start.saturating_add(self.per_page).min(total)
    }

    /// Number of the last page (at least 1).
    pub fn last_page(&self, total: usize) -> usize {
        total.div_ceil(self.per_page).max(1)
    }

    /// The `Link` header value for this page of `total` items at `endpoint`
    /// (absolute URL without query), or `None` when everything fits on one page.
    pub fn link_header(&self, endpoint: &str, total: usize) -> Option<String> {
        let last = self.last_page(total);
        if last <= 1 {
            return None;
        }
        let link = |page: usize, rel: &str| {
            format!(
                "<{endpoint}?per_page={}&page={page}>; rel=\"{rel}\"",
                self.per_page
            )
        };
        let mut links = Vec::with_capacity(4);
        if self.page > 1 {
            links.push(link((self.page - 1).min(last), "prev"));
        }
        if self.page < last {
            links.push(link(self.page + 1, "next"));
            links.push(link(last, "last"));
        }
        if self.page > 1 {
            links.push(link(1, "first"));
        }
        Some(links.join(", "))
    }

    /// Like [`Page::link_header`], keeping the request's other query parameters (in their
    /// order, before `per_page` and `page`), as GitHub's links for filtered lists do.
    pub fn link_header_keeping(&self, endpoint: &str, query: &str, total: usize) -> Option<String> {
        let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .filter(|(name, _)| name != "page" && name != "per_page")
            .collect();
        if kept.is_empty() {
            return self.link_header(endpoint, total);
        }
        let prefix = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&kept)
            .finish();
        self.link_header(&format!("{endpoint}?{prefix}"), total)
            .map(|links| {
                links.replace(
                    &format!("{prefix}?per_page="),
                    &format!("{prefix}&per_page="),
                )
            })
    }

    /// GitLab's offset pagination headers for this page of `total` items at `endpoint`
    /// (absolute URL without query) requested with `query`.
    pub fn gitlab_headers(
        &self,
        endpoint: &str,
        query: &str,
        total: usize,
    ) -> Vec<(String, String)> {
        let last = self.last_page(total);
        let next = (self.page < last).then_some(self.page + 1);
        let prev = (self.page > 1).then(|| (self.page - 1).min(last));
        let link = |page: usize, rel: &str| {
            let pages = [
                ("page", page.to_string()),
                ("per_page", self.per_page.to_string()),
            ];
            format!("<{}>; rel=\"{rel}\"", gitlab_link(endpoint, query, &pages))
        };
        let mut links = Vec::with_capacity(4);
        links.extend(prev.map(|p| link(p, "prev")));
        links.extend(next.map(|p| link(p, "next")));
        links.push(link(1, "first"));
        links.push(link(last, "last"));
        let number = |n: Option<usize>| n.map_or_else(String::new, |n| n.to_string());
        [
            ("x-page", self.page.to_string()),
            ("x-per-page", self.per_page.to_string()),
            ("x-total", total.to_string()),
            ("x-total-pages", last.to_string()),
            ("x-next-page", number(next)),
            ("x-prev-page", number(prev)),
            ("link", links.join(", ")),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}

/// `endpoint` with the parameters of `query`, `overrides` replacing same-named ones, all
/// sorted by name (as GitLab's Rails `to_query` lists them).
pub fn gitlab_link(endpoint: &str, query: &str, overrides: &[(&str, String)]) -> String {
    let mut params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (name, value) in overrides {
        params.insert((*name).to_string(), value.clone());
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    format!("{endpoint}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "http://127.0.0.1:9/installation/repositories";

    fn page(per_page: usize, page: usize) -> Page {
        Page { per_page, page }
    }

    #[test]
    fn defaults_and_clamping() {
        assert_eq!(Page::from_query(None, None), page(30, 1));
        assert_eq!(Page::from_query(Some("500"), Some("2")), page(100, 2));
        assert_eq!(Page::from_query(Some("0"), Some("0")), page(30, 1));
        assert_eq!(Page::from_query(Some("x"), Some("-3")), page(30, 1));
        assert_eq!(Page::from_query(Some("100"), Some("4")), page(100, 4));
    }

    #[test]
    fn first_page_has_next_and_last() {
        assert_eq!(
            page(100, 1).link_header(EP, 350).unwrap(),
            format!("<{EP}?per_page=100&page=2>; rel=\"next\", <{EP}?per_page=100&page=4>; rel=\"last\"")
        );
    }

    #[test]
    fn middle_page_has_all_four() {
        assert_eq!(
            page(100, 2).link_header(EP, 350).unwrap(),
            format!(
                "<{EP}?per_page=100&page=1>; rel=\"prev\", <{EP}?per_page=100&page=3>; rel=\"next\", \
                 <{EP}?per_page=100&page=4>; rel=\"last\", <{EP}?per_page=100&page=1>; rel=\"first\""
            )
        );
    }

    #[test]
    fn last_page_has_prev_and_first() {
        assert_eq!(
            page(100, 4).link_header(EP, 350).unwrap(),
            format!("<{EP}?per_page=100&page=3>; rel=\"prev\", <{EP}?per_page=100&page=1>; rel=\"first\"")
        );
        assert_eq!(page(100, 4).range(350), 300..350);
    }

    #[test]
    fn past_the_end_points_back_to_last() {
        assert_eq!(
            page(100, 9).link_header(EP, 350).unwrap(),
            format!("<{EP}?per_page=100&page=4>; rel=\"prev\", <{EP}?per_page=100&page=1>; rel=\"first\"")
        );
        assert_eq!(page(100, 9).range(350), 350..350);
    }

    #[test]
    fn single_page_has_no_link() {
        assert_eq!(page(30, 1).link_header(EP, 30), None);
        assert_eq!(page(30, 1).link_header(EP, 0), None);
        assert_eq!(page(30, 1).range(7), 0..7);
    }

    #[test]
    fn gitlab_headers_keep_sorted_params_and_always_link_first_and_last() {
        let ep = "http://127.0.0.1:9/gitlab/com/api/v4/groups";
        let page = Page::with_default(None, Some("2"), GITLAB_DEFAULT_PER_PAGE);
        let headers = page.gitlab_headers(ep, "top_level_only=true&page=2&order_by=id", 45);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        let link = |p: usize| format!("{ep}?order_by=id&page={p}&per_page=20&top_level_only=true");
        assert_eq!(
            get("link"),
            format!(
                "<{}>; rel=\"prev\", <{}>; rel=\"next\", <{}>; rel=\"first\", <{}>; rel=\"last\"",
                link(1),
                link(3),
                link(1),
                link(3)
            )
        );
        assert_eq!(
            [
                get("x-page"),
                get("x-per-page"),
                get("x-total"),
                get("x-total-pages")
            ],
            ["2", "20", "45", "3"]
        );
        assert_eq!((get("x-next-page"), get("x-prev-page")), ("3", "1"));

        let only = Page::with_default(Some("100"), None, GITLAB_DEFAULT_PER_PAGE);
        let headers = only.gitlab_headers(ep, "", 0);
        let get = |name: &str| headers.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(
            (get("x-next-page"), get("x-prev-page")),
            (String::new(), String::new())
        );
        assert_eq!(get("x-total-pages"), "1");
        assert_eq!(
            get("link"),
            format!("<{ep}?page=1&per_page=100>; rel=\"first\", <{ep}?page=1&per_page=100>; rel=\"last\"")
        );
    }

    #[test]
    fn gitlab_link_replaces_and_encodes() {
        assert_eq!(
            gitlab_link(
                "http://h/p",
                "id_after=5&search=a%20b&pagination=keyset",
                &[("id_after", "9".into())]
            ),
            "http://h/p?id_after=9&pagination=keyset&search=a+b"
        );
    }

    #[test]
    fn github_links_keep_filters() {
        let ep = "http://127.0.0.1:9/organizations/7/members";
        let p = Page::from_query(Some("2"), Some("2"));
        assert_eq!(
            p.link_header_keeping(ep, "role=admin&per_page=2&page=2&filter=all", 5)
                .unwrap(),
            format!(
                "<{ep}?role=admin&filter=all&per_page=2&page=1>; rel=\"prev\", \
                 <{ep}?role=admin&filter=all&per_page=2&page=3>; rel=\"next\", \
                 <{ep}?role=admin&filter=all&per_page=2&page=3>; rel=\"last\", \
                 <{ep}?role=admin&filter=all&per_page=2&page=1>; rel=\"first\""
            )
        );
        assert_eq!(p.link_header_keeping(ep, "page=2", 5), p.link_header(ep, 5));
        assert_eq!(p.link_header_keeping(ep, "role=admin", 2), None);
    }

    #[test]
    fn clamped_per_page_appears_in_links() {
        let p = Page::from_query(Some("1000"), None);
        assert_eq!(
            p.link_header(EP, 250).unwrap(),
            format!("<{EP}?per_page=100&page=2>; rel=\"next\", <{EP}?per_page=100&page=3>; rel=\"last\"")
        );
        assert_eq!(p.range(250), 0..100);
    }
}
