//! GitHub-style page selection and `Link` headers.
//!
//! `per_page` defaults to 30 and is clamped to 100; `page` defaults to 1. The `Link` header
//! lists `prev`, `next`, `last` and `first` in GitHub's order and is omitted when every item
//! fits on one page.

use std::ops::Range;

pub const DEFAULT_PER_PAGE: usize = 30;
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
        let positive = |v: Option<&str>| v.and_then(|s| s.parse::<usize>().ok()).filter(|&n| n > 0);
        Page {
            per_page: positive(per_page)
                .unwrap_or(DEFAULT_PER_PAGE)
                .min(MAX_PER_PAGE),
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
    fn clamped_per_page_appears_in_links() {
        let p = Page::from_query(Some("1000"), None);
        assert_eq!(
            p.link_header(EP, 250).unwrap(),
            format!("<{EP}?per_page=100&page=2>; rel=\"next\", <{EP}?per_page=100&page=3>; rel=\"last\"")
        );
        assert_eq!(p.range(250), 0..100);
    }
}
