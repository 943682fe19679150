//! Geometry of the virtualized connection table: which rows a scroll position shows, and the
//! spacers that give the scrollbar its full length. Very long tables are scaled so the content
//! stays within what browsers can lay out.

/// Height of one table row in CSS pixels (the stylesheet fixes it).
pub(crate) const ROW_H: f64 = 24.0;
/// Tallest scroll content used; longer tables are scaled into it.
pub(crate) const MAX_PX: f64 = 8_000_000.0;
/// Extra rows fetched above and below the visible ones.
pub(crate) const OVERSCAN: u32 = 10;

/// Scroll content height for `total` rows.
pub(crate) fn content_height(total: u64) -> f64 {
    (total as f64 * ROW_H).min(MAX_PX)
}

/// Content pixels per row (ROW_H unless the table is scaled).
fn px_per_row(total: u64, viewport: f64) -> f64 {
    let full = total as f64 * ROW_H;
    if full <= MAX_PX || total == 0 {
        ROW_H
    } else {
        // Map the scrollable range onto the rows that can be first on screen.
        let visible = (viewport / ROW_H).ceil();
        (MAX_PX - viewport).max(1.0) / (total as f64 - visible).max(1.0)
    }
}

/// The window (offset, limit) to ask the observer for at this scroll position.
pub(crate) fn window(scroll_top: f64, viewport: f64, total: u64) -> (u32, u32) {
    let first = (scroll_top.max(0.0) / px_per_row(total, viewport)).floor() as u64;
    let first = first.min(total.saturating_sub(1));
    let visible = (viewport / ROW_H).ceil() as u32 + 1;
    let offset = (first as u32).saturating_sub(OVERSCAN);
    (offset, visible + 2 * OVERSCAN)
}

/// Heights of the spacers above and below `rows` rendered rows starting at `offset`.
pub(crate) fn spacers(offset: u32, rows: usize, total: u64, viewport: f64) -> (f64, f64) {
    let top = offset as f64 * px_per_row(total, viewport);
    let bottom = (content_height(total) - top - rows as f64 * ROW_H).max(0.0);
    (top, bottom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_are_not_scaled() {
        assert_eq!(content_height(100), 2400.0);
        // Scrolled to row 50 with a 480 px viewport: fetch from row 40, 20 visible + 1 + 20 overscan.
        assert_eq!(window(50.0 * ROW_H, 480.0, 100), (40, 41));
        assert_eq!(window(0.0, 480.0, 100), (0, 41));
        let (top, bottom) = spacers(40, 41, 100, 480.0);
        assert_eq!((top, bottom), (960.0, 2400.0 - 960.0 - 41.0 * ROW_H));
    }

    #[test]
    fn a_million_rows_fit_and_the_end_is_reachable() {
        let total = 1_000_000;
        assert_eq!(content_height(total), MAX_PX);
        let viewport = 600.0;
        let (offset, limit) = window(MAX_PX - viewport, viewport, total);
        assert!(
            offset as u64 + limit as u64 >= total - 1,
            "the last rows are in the window: {offset}+{limit}"
        );
        let (mid, _) = window((MAX_PX - viewport) / 2.0, viewport, total);
        assert!((mid as i64 - 500_000).abs() < 100, "{mid}");
        let (top, bottom) = spacers(mid, 45, total, viewport);
        assert!(top > 0.0 && bottom > 0.0 && top + bottom < MAX_PX);
    }

    #[test]
    fn empty_table() {
        assert_eq!(window(0.0, 480.0, 0), (0, 41));
        assert_eq!(spacers(0, 0, 0, 480.0), (0.0, 0.0));
    }
}
