//! The console charts' part of the OpenAPI document (`http::charts`).

#![allow(dead_code, reason = "the types exist for their schemas only")]

use serde_json::json;
use shared::openapi::{Auth, Op, body, integer, string};
use utoipa::ToSchema;

/// One bucket (a Beijing hour or day) of a chart; which figures are present
/// depends on the chart.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ChartPoint)]
struct ChartPoint {
    /// 该时段的开始，Unix 秒 · the bucket's start, Unix seconds
    start: i64,
    /// paid-*：该时段支付的笔数；success-ratio：该日创建的订单中已支付的笔数 · paid-*: orders paid in the bucket; success-ratio: orders created that day and paid
    paid_count: Option<i64>,
    /// 支付金额（分） · the amount paid, in fen
    paid_fen: Option<i64>,
    /// 该日创建的订单数 · orders created that day
    created_count: Option<i64>,
    /// 成功率（‰，向下取整）；当日无订单时不出现 · the success ratio in ‰, rounded down; absent when nothing was created
    ratio_permille: Option<i64>,
    /// 有入账记录的已支付订单数 · paid orders with a recorded commit
    delay_count: Option<i64>,
    /// 通知延迟中位数（秒）：本地提交 PAID 的时间减去微信的 time_end · the median delay in seconds: our commit of PAID minus WeChat's time_end
    p50_seconds: Option<i64>,
    /// 通知延迟 p90（秒） · the 90th percentile delay, seconds
    p90_seconds: Option<i64>,
}

/// A chart's figures: one point per bucket of `[from, to)`, oldest first.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ChartSeries)]
struct ChartSeries {
    /// paid-hourly、paid-daily、success-ratio 或 notify-delay
    name: String,
    from: i64,
    to: i64,
    /// 3600 或 86400 · 3600 or 86400
    bucket_seconds: i64,
    points: Vec<ChartPoint>,
}

const NAMES: &str = "paid-hourly（每小时支付金额与笔数，范围至多 7 天，默认最近 24 小时）、paid-daily（每日支付金额与笔数）、\
success-ratio（每日成功率：当日创建的订单中已支付的比例）、notify-delay（每日通知延迟 p50/p90：本地提交 PAID 的时间减去微信的 time_end）；\
按天的图范围至多 92 天，默认最近 30 天。时段按北京时间划分。";
const NAMES_EN: &str = "paid-hourly (amount and count paid per hour; at most 7 days, the last 24 \
hours by default), paid-daily (per day), success-ratio (per day: the share of the day's new \
orders that were paid), notify-delay (per day: p50/p90 of our commit of PAID minus WeChat's \
time_end); the daily charts cover at most 92 days, the last 30 by default. Buckets are Beijing \
hours and days.";

fn chart(op: Op) -> Op {
    op.auth(Auth::Admin)
        .path_param("name", "图表名", "the chart's name", "paid-daily")
        .query(
            "from",
            false,
            integer(),
            "范围起点（含），Unix 秒",
            "the range's start (included), Unix seconds",
            json!(1_761_926_400),
        )
        .query(
            "to",
            false,
            integer(),
            "范围终点（不含），Unix 秒",
            "the range's end (excluded), Unix seconds",
            json!(1_764_518_400),
        )
        .describe(NAMES, NAMES_EN)
}

pub(super) fn ops() -> Vec<Op> {
    vec![
        chart(Op::get("/api/pay/admin/charts/{name}.svg"))
            .summary("控制台图表（SVG，管理）", "A console chart as SVG (admin)")
            .response(
                200,
                body(
                    "image/svg+xml",
                    string(),
                    "服务器绘制的图表（无脚本）；无数据时显示“暂无数据”",
                    "the chart drawn on the server (no script); \"暂无数据\" when there is no data",
                    json!(
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 800 536\" …></svg>"
                    ),
                ),
            )
            .errors(&[400, 401, 404, 429, 500, 503]),
        chart(Op::get("/api/pay/admin/charts/{name}.json"))
            .summary(
                "控制台图表的数据（管理）",
                "A console chart's figures (admin)",
            )
            .ok::<ChartSeries>(
                "每个时段的数字",
                "the figures per bucket",
                json!({"name": "paid-daily", "from": 1_764_432_000, "to": 1_764_518_400,
                       "bucketSeconds": 86400,
                       "points": [{"start": 1_764_432_000, "paidCount": 2, "paidFen": 129}]}),
            )
            .errors(&[400, 401, 404, 429, 500, 503]),
    ]
}
