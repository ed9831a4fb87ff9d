//! The three reports, computed from CRM records. Pure functions, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A report Analytics can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `report-<n>`.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// `contacts_summary`, `deals_pipeline` or `sales_forecast`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What it shows.
    pub description: &'static str,
    /// The CRM services it reads.
    #[serde(skip)]
    pub sources: &'static [&'static str],
}

/// The reports, as the original seeded them.
pub const REPORTS: [Report; 3] = [
    Report {
        id: "report-1",
        name: "Contacts Summary",
        kind: "contacts_summary",
        description: "Contacts by company and tag, and the most recent ones",
        sources: &["crm.contacts"],
    },
    Report {
        id: "report-2",
        name: "Deals Pipeline",
        kind: "deals_pipeline",
        description: "Deal count, value and probability by stage, and the largest deals",
        sources: &["crm.deals"],
    },
    Report {
        id: "report-3",
        name: "Sales Forecast",
        kind: "sales_forecast",
        description: "Expected and probability-weighted revenue of open deals, by month",
        sources: &["crm.deals"],
    },
];

/// The report with this id.
pub fn find(id: &str) -> Option<&'static Report> {
    REPORTS.iter().find(|report| report.id == id)
}

/// A CRM contact, as far as the reports need it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Id.
    pub id: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail.
    pub email: String,
    /// Company.
    #[serde(default)]
    pub company: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

/// A CRM deal, as far as the reports need it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deal {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Amount.
    pub value: f64,
    /// Stage.
    pub stage: String,
    /// Chance of winning, 0–100.
    pub probability: f64,
    /// Expected close date (`YYYY-MM-DD`).
    #[serde(default)]
    pub expected_close_date: Option<String>,
}

fn average(sum: f64, count: usize) -> f64 {
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// `contacts_summary`: totals by company and tag, top five companies, ten newest contacts.
pub fn contacts_summary(contacts: &[Contact]) -> Value {
    let mut by_company = BTreeMap::<&str, u64>::new();
    let mut by_tag = BTreeMap::<&str, u64>::new();
    for contact in contacts {
        *by_company
            .entry(contact.company.as_deref().unwrap_or("(none)"))
            .or_default() += 1;
        for tag in &contact.tags {
            *by_tag.entry(tag).or_default() += 1;
        }
    }
    let mut top: Vec<(&str, u64)> = by_company.iter().map(|(c, n)| (*c, *n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut recent: Vec<&Contact> = contacts.iter().collect();
    recent.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    json!({
        "totalContacts": contacts.len(),
        "byCompany": by_company,
        "byTag": by_tag,
        "topCompanies": top.iter().take(5).map(|(company, count)| json!({"company": company, "count": count})).collect::<Vec<_>>(),
        "recentContacts": recent.iter().take(10).map(|c| json!({
            "id": c.id, "name": format!("{} {}", c.first_name, c.last_name),
            "email": c.email, "company": c.company, "createdAt": c.created_at,
        })).collect::<Vec<_>>(),
    })
}

/// `deals_pipeline`: totals, averages, per-stage figures and the ten largest deals.
pub fn deals_pipeline(deals: &[Deal]) -> Value {
    let total_value: f64 = deals.iter().map(|deal| deal.value).sum();
    let probability: f64 = deals.iter().map(|deal| deal.probability).sum();
    let mut by_stage = BTreeMap::<&str, (usize, f64, f64)>::new();
    for deal in deals {
        let stage = by_stage.entry(&deal.stage).or_default();
        stage.0 += 1;
        stage.1 += deal.value;
        stage.2 += deal.probability;
    }
    let by_stage: BTreeMap<&str, Value> = by_stage
        .into_iter()
        .map(|(stage, (count, value, probability))| {
            (stage, json!({
                "count": count, "value": value,
                "avgValue": average(value, count), "avgProbability": average(probability, count),
            }))
        })
        .collect();
    let mut top: Vec<&Deal> = deals.iter().collect();
    top.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.id.cmp(&b.id)));
    json!({
        "totalDeals": deals.len(),
        "totalValue": total_value,
        "avgDealValue": average(total_value, deals.len()),
        "avgProbability": average(probability, deals.len()),
        "byStage": by_stage,
        "topDeals": top.iter().take(10).map(|d| json!({
            "id": d.id, "title": d.title, "value": d.value, "stage": d.stage, "probability": d.probability,
        })).collect::<Vec<_>>(),
    })
}

/// `sales_forecast`: expected and weighted (value × probability / 100) revenue of open deals
/// (not won or lost), a confidence level from their ratio, and both by expected close month.
pub fn sales_forecast(deals: &[Deal]) -> Value {
    let open: Vec<&Deal> = deals
        .iter()
        .filter(|deal| deal.stage != "won" && deal.stage != "lost")
        .collect();
    let weighted = |deal: &Deal| deal.value * deal.probability / 100.0;
    let expected: f64 = open.iter().map(|deal| deal.value).sum();
    let weighted_total: f64 = open.iter().map(|deal| weighted(deal)).sum();
    let ratio = if expected > 0.0 {
        weighted_total / expected
    } else {
        0.0
    };
    let confidence = if ratio < 0.4 {
        "low"
    } else if ratio > 0.7 {
        "high"
    } else {
        "medium"
    };
    let mut by_month = BTreeMap::<String, (usize, f64, f64)>::new();
    for deal in &open {
        let month = deal
            .expected_close_date
            .as_deref()
            .and_then(|date| date.get(..7))
            .unwrap_or("unscheduled")
            .to_owned();
        let entry = by_month.entry(month).or_default();
        entry.0 += 1;
        entry.1 += deal.value;
        entry.2 += weighted(deal);
    }
    let by_month: BTreeMap<String, Value> = by_month
        .into_iter()
        .map(|(month, (count, revenue, weighted))| {
            (
                month,
                json!({"deals": count, "revenue": revenue, "weightedRevenue": weighted}),
            )
        })
        .collect();
    json!({
        "openDeals": open.len(),
        "expectedRevenue": expected,
        "weightedRevenue": weighted_total,
        "confidenceLevel": confidence,
        "byMonth": by_month,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(id: &str, value: f64, stage: &str, probability: f64, close: &str) -> Deal {
        Deal {
            id: id.into(),
            title: id.into(),
            value,
            stage: stage.into(),
            probability,
            expected_close_date: Some(close.into()),
        }
    }

    fn contact(id: &str, company: Option<&str>, tags: &[&str], at: &str) -> Contact {
        Contact {
            id: id.into(),
            first_name: "F".into(),
            last_name: id.into(),
            email: format!("{id}@example.com"),
            company: company.map(Into::into),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            created_at: at.into(),
        }
    }

    fn deals() -> Vec<Deal> {
        vec![
            deal("d1", 150_000.0, "negotiation", 75.0, "2026-12-15"),
            deal("d2", 85_000.0, "proposal", 60.0, "2027-01-31"),
            deal("d3", 42_000.0, "won", 100.0, "2026-10-30"),
            deal("d4", 150_000.0, "qualified", 40.0, "2027-03-31"),
        ]
    }

    #[test]
    fn pipeline_totals_and_stages() {
        let report = deals_pipeline(&deals());
        assert_eq!(report["totalValue"], 427_000.0);
        assert_eq!(report["avgDealValue"], 106_750.0);
        assert_eq!(report["byStage"]["won"]["count"], 1);
        assert_eq!(report["topDeals"][0]["id"], "d1");
        assert_eq!(report["topDeals"][1]["id"], "d4");
        assert_eq!(deals_pipeline(&[])["avgDealValue"], 0.0);
    }

    #[test]
    fn forecast_weighs_open_deals_only() {
        let report = sales_forecast(&deals());
        assert_eq!(report["expectedRevenue"], 385_000.0);
        assert_eq!(report["weightedRevenue"], 223_500.0);
        assert_eq!(report["confidenceLevel"], "medium");
        assert_eq!(report["byMonth"]["2027-01"]["weightedRevenue"], 51_000.0);
        assert!(
            report["byMonth"].get("2026-10").is_none(),
            "won deals are not forecast"
        );
        let sure = [deal("a", 10.0, "lead", 90.0, "2027-01-01")];
        assert_eq!(sales_forecast(&sure)["confidenceLevel"], "high");
        let unlikely = [deal("a", 10.0, "lead", 10.0, "2027-01-01")];
        assert_eq!(sales_forecast(&unlikely)["confidenceLevel"], "low");
    }

    #[test]
    fn contacts_by_company_tag_and_recency() {
        let contacts = [
            contact("a", Some("Acme"), &["vip"], "2026-01-01"),
            contact("b", Some("Acme"), &["vip", "new"], "2026-03-01"),
            contact("c", None, &[], "2026-02-01"),
        ];
        let report = contacts_summary(&contacts);
        assert_eq!(report["totalContacts"], 3);
        assert_eq!(report["byCompany"]["Acme"], 2);
        assert_eq!(report["byTag"]["vip"], 2);
        assert_eq!(
            report["topCompanies"][0],
            json!({"company": "Acme", "count": 2})
        );
        assert_eq!(report["recentContacts"][0]["id"], "b");
        assert_eq!(report["recentContacts"][2]["id"], "a");
    }
}
