//! `GET /`: the console (SPEC §11), one HTML page with its style and script inside, compiled
//! into the binary (`console/`: no build step, no CDN, no outside request). The page calls the
//! API of this origin with the key the person pastes (kept in the tab's `sessionStorage`).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;

/// The script, its three files in order (one script: they share its declarations).
const SCRIPT: [&str; 3] = [
    include_str!("console/console.js"),
    include_str!("console/scenarios.js"),
    include_str!("console/step.js"),
];

/// The page: `page.html` with `console.css` and the script put in its `<style>` and
/// `<script>` (one request: the first paint waits for nothing else).
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("console/page.html")
        .replacen("/*CSS*/", include_str!("console/console.css"), 1)
        .replacen("/*JS*/", &SCRIPT.concat(), 1)
});

/// Nothing but this origin: the page's own inline style and script, and its API calls.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

#[utoipa::path(get, path = "/", tag = "meta",
    responses((status = 200, description = "the console: one HTML page (it needs no key; its calls do)",
               content_type = "text/html", body = String)))]
pub async fn console() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE.as_str(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_carries_its_style_and_script_and_nothing_from_outside() {
        let page = super::PAGE.as_str();
        assert!(!page.contains("/*CSS*/") && !page.contains("/*JS*/"));
        assert!(page.contains("--accent") && page.contains("function route()"));
        assert!(page.contains("function flow(") && page.trim_end().ends_with("</html>"));
        for outside in ["http://", "https://", "//cdn", "src=\"http"] {
            assert!(!page.contains(outside), "the page names {outside}");
        }
    }
}
