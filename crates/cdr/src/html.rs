//! The HTML report: one self-contained page, inline SVG charts (calls by hour, calls by region,
//! answer-rate trend by day), tables, no JavaScript and no external resources.

use std::fmt::Write as _;

use crate::report::{Counts, Report};

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const BLUE: &str = "#3b82f6";
const GREEN: &str = "#22c55e";
const GREY: &str = "#6b7280";

/// Vertical bars: total calls (blue) with the answered part (green) in front.
fn bars_svg(title: &str, items: &[(String, Counts)]) -> String {
    let (w, h, left, bottom, top) = (760.0_f64, 260.0_f64, 40.0, 40.0, 20.0);
    let max = items.iter().map(|(_, c)| c.calls).max().unwrap_or(0).max(1) as f64;
    let n = items.len().max(1) as f64;
    let slot = (w - left - 10.0) / n;
    let bw = (slot * 0.7).max(1.0);
    let ph = h - bottom - top;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>{t}</title><line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"{GREY}\"/>\
         <text x=\"4\" y=\"{ty}\" font-size=\"11\" fill=\"{GREY}\">{max}</text>",
        t = esc(title),
        y0 = h - bottom,
        x1 = w - 10.0,
        ty = top + 4.0,
        max = max as u64
    );
    let every = (items.len() / 24).max(1);
    for (i, (label, c)) in items.iter().enumerate() {
        let x = left + i as f64 * slot + (slot - bw) / 2.0;
        let ht = c.calls as f64 / max * ph;
        let ha = c.answered as f64 / max * ph;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{ht:.1}\" fill=\"{BLUE}\"><title>{} : {} calls, {} answered</title></rect>\
             <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{ha:.1}\" fill=\"{GREEN}\"/>",
            h - bottom - ht,
            esc(label),
            c.calls,
            c.answered,
            h - bottom - ha
        );
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"{GREY}\">{}</text>",
                x + bw / 2.0,
                h - bottom + 14.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars for regions.
fn hbars_svg(title: &str, items: &[(String, Counts)]) -> String {
    let row = 22.0_f64;
    let (w, left) = (760.0_f64, 110.0_f64);
    let h = row * items.len().max(1) as f64 + 10.0;
    let max = items.iter().map(|(_, c)| c.calls).max().unwrap_or(0).max(1) as f64;
    let pw = w - left - 120.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        t = esc(title)
    );
    for (i, (label, c)) in items.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let bt = c.calls as f64 / max * pw;
        let ba = c.answered as f64 / max * pw;
        let name = if label.is_empty() { "(unknown)" } else { label };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{bt:.1}\" height=\"{:.1}\" fill=\"{BLUE}\"/>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{ba:.1}\" height=\"{:.1}\" fill=\"{GREEN}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{GREY}\">{} / {:.0}%</text>",
            left - 6.0,
            y + 13.0,
            esc(name),
            row - 6.0,
            row - 6.0,
            left + bt + 6.0,
            y + 13.0,
            c.calls,
            c.asr() * 100.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Line chart of the answer rate per day (0..100 %).
fn trend_svg(title: &str, items: &[(String, Counts)]) -> String {
    let (w, h, left, bottom, top) = (760.0_f64, 220.0_f64, 40.0, 30.0, 15.0);
    let ph = h - bottom - top;
    let n = items.len();
    let step = if n > 1 {
        (w - left - 20.0) / (n - 1) as f64
    } else {
        0.0
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        t = esc(title)
    );
    for pctl in [0u32, 50, 100] {
        let y = top + ph * (1.0 - f64::from(pctl) / 100.0);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"4\" y=\"{:.1}\" font-size=\"10\" fill=\"{GREY}\">{pctl}%</text>",
            w - 10.0,
            y + 4.0
        );
    }
    let pts: Vec<(f64, f64)> = items
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (left + i as f64 * step, top + ph * (1.0 - c.asr())))
        .collect();
    let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"{GREEN}\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    );
    let every = (n / 10).max(1);
    for (i, ((x, y), (label, c))) in pts.iter().zip(items).enumerate() {
        let _ = write!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{GREEN}\"><title>{}: {:.1}% of {} calls</title></circle>",
            esc(label),
            c.asr() * 100.0,
            c.calls
        );
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\" fill=\"{GREY}\">{}</text>",
                h - bottom + 14.0,
                esc(label.get(5..).unwrap_or(label))
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn counts_table(first: &str, rows: &[(String, Counts)]) -> String {
    let mut s = format!(
        "<table><tr><th>{}</th><th>来电 calls</th><th>接通 answered</th><th>未接 missed</th><th>接通率 ASR</th><th>平均通话 ACD</th></tr>",
        esc(first)
    );
    for (k, c) in rows {
        let _ =
            write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.0} s</td></tr>",
            esc(if k.is_empty() || k == "/" { "(unknown)" } else { k }),
            c.calls,
            c.answered,
            c.missed,
            c.asr() * 100.0,
            c.acd_seconds()
        );
    }
    s.push_str("</table>");
    s
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let t = &r.totals;
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>来电报告 Call report</title><style>\
         body{font-family:system-ui,-apple-system,\"PingFang SC\",\"Microsoft YaHei\",sans-serif;margin:2em auto;max-width:820px;color:#111}\
         .cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 16px;min-width:110px}\
         .card b{display:block;font-size:1.6em}table{border-collapse:collapse;margin:8px 0 24px}\
         td,th{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}\
         .legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}\
         </style></head><body>\n",
    );
    let _ = write!(
        s,
        "<h1>来电报告 Call report</h1><p>{} — {} ({})</p>\
         <div class=\"cards\">\
         <div class=\"card\">来电 calls<b>{}</b></div><div class=\"card\">接通 answered<b>{}</b></div>\
         <div class=\"card\">未接 missed<b>{}</b></div><div class=\"card\">接通率 ASR<b>{:.1}%</b></div>\
         <div class=\"card\">平均通话 ACD<b>{:.0} s</b></div><div class=\"card\">来电号码 callers<b>{}</b></div>\
         <div class=\"card\">重复来电 repeat<b>{}</b></div></div>\n\
         <p class=\"legend\"><span style=\"background:{BLUE}\"></span>calls<span style=\"background:{GREEN}\"></span>answered</p>",
        esc(&r.first_call),
        esc(&r.last_call),
        esc(&r.tz),
        t.calls,
        t.answered,
        t.missed,
        t.asr() * 100.0,
        t.acd_seconds(),
        r.unique_callers,
        r.repeat_callers
    );
    let hours: Vec<(String, Counts)> = r
        .by_hour
        .iter()
        .enumerate()
        .map(|(h, c)| (format!("{h}"), *c))
        .collect();
    s.push_str("<h2>按时段 Calls by hour of day</h2>");
    s.push_str(&bars_svg("Calls by hour of day", &hours));
    s.push_str("<h2>按地区 Calls by province</h2>");
    let regions: Vec<(String, Counts)> = r.by_province.iter().take(15).cloned().collect();
    s.push_str(&hbars_svg("Calls by province", &regions));
    s.push_str("<h2>接通率趋势 Answer rate by day</h2>");
    s.push_str(&trend_svg("Answer rate by day", &r.by_day));
    s.push_str("<h2>按日 By day</h2>");
    s.push_str(&counts_table("day", &r.by_day));
    s.push_str("<h2>按城市 By city</h2>");
    let cities: Vec<(String, Counts)> = r.by_city.iter().take(30).cloned().collect();
    s.push_str(&counts_table("province/city", &cities));
    s.push_str("<h2>按400号码 By number</h2>");
    s.push_str(&counts_table("number", &r.by_number));
    s.push_str("<h2>按接听 By answering target</h2>");
    s.push_str(&counts_table("target", &r.by_target));
    for (title, list) in [
        ("来电最多 Top callers", &r.top_callers),
        (
            "多次来电未接通 Repeat callers never answered",
            &r.repeat_unanswered,
        ),
    ] {
        let _ = write!(
            s,
            "<h2>{}</h2><table><tr><th>caller</th><th>region</th><th>calls</th><th>answered</th><th>last call (UTC)</th></tr>",
            esc(title)
        );
        for c in list.iter() {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.caller),
                esc(&c.province),
                esc(&c.city),
                c.counts.calls,
                c.counts.answered,
                esc(&c.last_call)
            );
        }
        s.push_str("</table>");
    }
    s.push_str("\n</body></html>\n");
    s
}
