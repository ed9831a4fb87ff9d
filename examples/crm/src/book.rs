//! One tenant's contacts and deals: seed data, search, sorting, validation, the pipeline
//! summary. Pure data, no I/O.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The stages of a deal, in pipeline order.
pub const STAGES: [&str; 6] = [
    "lead",
    "qualified",
    "proposal",
    "negotiation",
    "won",
    "lost",
];

/// A customer contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contact {
    /// `contact-<n>`.
    pub id: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Position in the company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Free tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A sales deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deal {
    /// `deal-<n>`.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Amount.
    pub value: f64,
    /// ISO currency code (default `USD`).
    pub currency: String,
    /// One of [`STAGES`].
    pub stage: String,
    /// Chance of winning, 0–100 (default 50).
    pub probability: f64,
    /// Expected close date (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_close_date: Option<String>,
    /// The contact the deal is with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// Free tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// Why a request was refused: the message goes to the caller as `{success:false, error}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the input breaks a rule.
    Invalid(String),
    /// 404: no such record.
    NotFound(&'static str),
}

/// Parameters of a list request (`skip`, `take`, `search`, `tags`, `sortBy`, `sortOrder`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Records to skip (default 0).
    pub skip: Option<usize>,
    /// Records to return (default 50, at most 500).
    pub take: Option<usize>,
    /// Case-insensitive substring over the searchable fields.
    pub search: Option<String>,
    /// Comma-separated tags: a record matches if it has any of them.
    pub tags: Option<String>,
    /// Field to sort by (default `createdAt`).
    pub sort_by: Option<String>,
    /// `asc` or `desc` (default).
    pub sort_order: Option<String>,
}

/// A page of records and the number that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records of the page, as JSON.
    pub data: Vec<Value>,
    /// Records matching before paging.
    pub total: usize,
}

/// A tenant's CRM data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    contacts: BTreeMap<String, Contact>,
    deals: BTreeMap<String, Deal>,
    next_id: u64,
}

fn contains(field: Option<&str>, needle: &str) -> bool {
    field.is_some_and(|text| text.to_lowercase().contains(needle))
}

fn text(object: &Map<String, Value>, field: &str) -> Option<String> {
    object
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn number(object: &Map<String, Value>, field: &str) -> Option<f64> {
    object.get(field).and_then(Value::as_f64)
}

/// Sorts JSON records by a field: numbers numerically, text alphabetically, missing last.
fn sort_records(records: &mut [Value], field: &str, descending: bool) {
    records.sort_by(|a, b| {
        let order = match (&a[field], &b[field]) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => return Ordering::Greater,
            (_, Value::Null) => return Ordering::Less,
            _ => Ordering::Equal,
        };
        if descending { order.reverse() } else { order }
    });
}

fn page(mut records: Vec<Value>, query: &ListQuery) -> Page {
    let descending = query.sort_order.as_deref() != Some("asc");
    let field = query.sort_by.as_deref().unwrap_or("createdAt");
    sort_records(&mut records, field, descending);
    let total = records.len();
    let take = query.take.unwrap_or(50).min(500);
    let data = records
        .into_iter()
        .skip(query.skip.unwrap_or(0))
        .take(take)
        .collect();
    Page { data, total }
}

fn wanted_tags(query: &ListQuery) -> Vec<String> {
    query
        .tags
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}

fn validate_deal(deal: &Deal) -> Result<(), Refusal> {
    if !STAGES.contains(&deal.stage.as_str()) {
        return Err(Refusal::Invalid(format!(
            "stage must be one of {}",
            STAGES.join(", ")
        )));
    }
    if !(0.0..=100.0).contains(&deal.probability) {
        return Err(Refusal::Invalid(
            "probability must be between 0 and 100".to_owned(),
        ));
    }
    if deal.value < 0.0 || !deal.value.is_finite() {
        return Err(Refusal::Invalid("value must be 0 or more".to_owned()));
    }
    Ok(())
}

fn validate_contact(contact: &Contact) -> Result<(), Refusal> {
    let email = &contact.email;
    let plausible = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if plausible {
        Ok(())
    } else {
        Err(Refusal::Invalid(format!(
            "email must be an address like name@example.com, not {email:?}"
        )))
    }
}

/// Applies a partial update (shallow merge) to a record: `id`, `createdAt` and `updatedAt` are
/// the store's; a field of the wrong type or an unknown field is refused with its reason.
fn merged<T: Serialize + serde::de::DeserializeOwned>(
    record: &T,
    changes: &Map<String, Value>,
    now: &str,
) -> Result<T, Refusal> {
    let mut object = match serde_json::to_value(record) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    for (field, value) in changes {
        if matches!(field.as_str(), "id" | "createdAt" | "updatedAt" | "contact") {
            continue;
        }
        if value.is_null() {
            object.remove(field);
        } else {
            object.insert(field.clone(), value.clone());
        }
    }
    object.insert("updatedAt".to_owned(), json!(now));
    serde_json::from_value(Value::Object(object))
        .map_err(|error| Refusal::Invalid(error.to_string()))
}

impl Book {
    /// The seed data every tenant starts with: four contacts and four deals whose pipeline
    /// totals 427 000 USD.
    pub fn seeded() -> Self {
        let contact = |n: u32,
                       first: &str,
                       last: &str,
                       email: &str,
                       company: &str,
                       position: &str,
                       tags: &[&str]| {
            let at = format!("2026-01-0{n}T09:00:00.000Z");
            Contact {
                id: format!("contact-{n}"),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                email: email.to_owned(),
                phone: Some(format!("+1-555-010{n}")),
                company: Some(company.to_owned()),
                position: Some(position.to_owned()),
                tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
                notes: None,
                created_at: at.clone(),
                updated_at: at,
            }
        };
        let deal = |n: u32, title: &str, value: f64, stage: &str, probability: f64, close: &str| {
            let at = format!("2026-02-0{n}T10:00:00.000Z");
            Deal {
                id: format!("deal-{n}"),
                title: title.to_owned(),
                description: None,
                value,
                currency: "USD".to_owned(),
                stage: stage.to_owned(),
                probability,
                expected_close_date: Some(close.to_owned()),
                contact_id: Some(format!("contact-{n}")),
                tags: Vec::new(),
                notes: None,
                created_at: at.clone(),
                updated_at: at,
            }
        };
        let contacts = [
            contact(
                1,
                "John",
                "Smith",
                "john.smith@acme-industries.com",
                "Acme Industries",
                "CEO",
                &["customer", "enterprise"],
            ),
            contact(
                2,
                "Sarah",
                "Johnson",
                "sarah.j@techstart.io",
                "TechStart",
                "CTO",
                &["prospect", "tech"],
            ),
            contact(
                3,
                "Michael",
                "Chen",
                "m.chen@globaltech.com",
                "GlobalTech Solutions",
                "VP Sales",
                &["customer", "partner"],
            ),
            contact(
                4,
                "Emily",
                "Davis",
                "emily.davis@innovate.co",
                "Innovate Co",
                "Product Manager",
                &["prospect"],
            ),
        ];
        let deals = [
            deal(
                1,
                "Enterprise License",
                150_000.0,
                "negotiation",
                75.0,
                "2026-12-15",
            ),
            deal(
                2,
                "Cloud Migration",
                85_000.0,
                "proposal",
                60.0,
                "2027-01-31",
            ),
            deal(
                3,
                "Annual Support Contract",
                42_000.0,
                "won",
                100.0,
                "2026-10-30",
            ),
            deal(
                4,
                "Platform Expansion",
                150_000.0,
                "qualified",
                40.0,
                "2027-03-31",
            ),
        ];
        Self {
            contacts: contacts.into_iter().map(|c| (c.id.clone(), c)).collect(),
            deals: deals.into_iter().map(|d| (d.id.clone(), d)).collect(),
            next_id: 5,
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}-{}", self.next_id);
        self.next_id += 1;
        id
    }

    /// Number of contacts.
    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    /// Number of deals.
    pub fn deal_count(&self) -> usize {
        self.deals.len()
    }

    /// Contacts matching `query`, optionally narrowed by `keep`.
    pub fn contacts(&self, query: &ListQuery, keep: impl Fn(&Contact) -> bool) -> Page {
        let needle = query.search.as_deref().map(str::to_lowercase);
        let tags = wanted_tags(query);
        let records = self
            .contacts
            .values()
            .filter(|c| keep(c))
            .filter(|c| {
                needle.as_deref().is_none_or(|needle| {
                    contains(Some(&c.first_name), needle)
                        || contains(Some(&c.last_name), needle)
                        || contains(Some(&c.email), needle)
                        || contains(c.company.as_deref(), needle)
                })
            })
            .filter(|c| tags.is_empty() || c.tags.iter().any(|tag| tags.contains(tag)))
            .map(|c| serde_json::to_value(c).unwrap_or_default())
            .collect();
        page(records, query)
    }

    /// One contact.
    pub fn contact(&self, id: &str) -> Result<&Contact, Refusal> {
        self.contacts
            .get(id)
            .ok_or(Refusal::NotFound("Contact not found"))
    }

    /// Creates a contact from a request body.
    pub fn create_contact(
        &mut self,
        body: &Map<String, Value>,
        now: &str,
    ) -> Result<Contact, Refusal> {
        let (Some(first_name), Some(last_name), Some(email)) = (
            text(body, "firstName"),
            text(body, "lastName"),
            text(body, "email"),
        ) else {
            return Err(Refusal::Invalid(
                "firstName, lastName, and email are required".to_owned(),
            ));
        };
        let blank = Contact {
            id: String::new(),
            first_name,
            last_name,
            email,
            phone: None,
            company: None,
            position: None,
            tags: Vec::new(),
            notes: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        };
        let mut contact = merged(&blank, body, now)?;
        validate_contact(&contact)?;
        // Ids are given only to records that are kept.
        contact.id = self.next_id("contact");
        self.contacts.insert(contact.id.clone(), contact.clone());
        Ok(contact)
    }

    /// Applies a partial update to a contact.
    pub fn update_contact(
        &mut self,
        id: &str,
        changes: &Map<String, Value>,
        now: &str,
    ) -> Result<Contact, Refusal> {
        let contact = merged(self.contact(id)?, changes, now)?;
        validate_contact(&contact)?;
        self.contacts.insert(contact.id.clone(), contact.clone());
        Ok(contact)
    }

    /// Deletes a contact; its deals keep their (now dangling) `contactId`, as in the original.
    pub fn delete_contact(&mut self, id: &str) -> Result<(), Refusal> {
        self.contacts
            .remove(id)
            .map(drop)
            .ok_or(Refusal::NotFound("Contact not found"))
    }

    /// A deal as JSON, with its contact embedded (`contact`).
    pub fn enriched(&self, deal: &Deal) -> Value {
        let mut value = serde_json::to_value(deal).unwrap_or_default();
        if let Some(contact) = deal
            .contact_id
            .as_ref()
            .and_then(|id| self.contacts.get(id))
        {
            value["contact"] = serde_json::to_value(contact).unwrap_or_default();
        }
        value
    }

    /// Deals matching `query`, optionally narrowed by `keep`, each with its contact.
    pub fn deals(&self, query: &ListQuery, keep: impl Fn(&Deal) -> bool) -> Page {
        let needle = query.search.as_deref().map(str::to_lowercase);
        let tags = wanted_tags(query);
        let records = self
            .deals
            .values()
            .filter(|d| keep(d))
            .filter(|d| {
                needle.as_deref().is_none_or(|needle| {
                    contains(Some(&d.title), needle) || contains(d.description.as_deref(), needle)
                })
            })
            .filter(|d| tags.is_empty() || d.tags.iter().any(|tag| tags.contains(tag)))
            .map(|d| self.enriched(d))
            .collect();
        page(records, query)
    }

    /// One deal.
    pub fn deal(&self, id: &str) -> Result<&Deal, Refusal> {
        self.deals
            .get(id)
            .ok_or(Refusal::NotFound("Deal not found"))
    }

    fn check_contact(&self, deal: &Deal) -> Result<(), Refusal> {
        match &deal.contact_id {
            Some(id) if !self.contacts.contains_key(id) => {
                Err(Refusal::Invalid(format!("contactId {id} names no contact")))
            }
            _ => Ok(()),
        }
    }

    /// Creates a deal from a request body (currency `USD` and probability 50 by default).
    pub fn create_deal(&mut self, body: &Map<String, Value>, now: &str) -> Result<Deal, Refusal> {
        let (Some(title), Some(value), Some(stage)) = (
            text(body, "title"),
            number(body, "value"),
            text(body, "stage"),
        ) else {
            return Err(Refusal::Invalid(
                "title, value, and stage are required".to_owned(),
            ));
        };
        let blank = Deal {
            id: String::new(),
            title,
            description: None,
            value,
            currency: "USD".to_owned(),
            stage,
            probability: 50.0,
            expected_close_date: None,
            contact_id: None,
            tags: Vec::new(),
            notes: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        };
        let mut deal = merged(&blank, body, now)?;
        validate_deal(&deal)?;
        self.check_contact(&deal)?;
        deal.id = self.next_id("deal");
        self.deals.insert(deal.id.clone(), deal.clone());
        Ok(deal)
    }

    /// Applies a partial update to a deal.
    pub fn update_deal(
        &mut self,
        id: &str,
        changes: &Map<String, Value>,
        now: &str,
    ) -> Result<Deal, Refusal> {
        let deal = merged(self.deal(id)?, changes, now)?;
        validate_deal(&deal)?;
        self.check_contact(&deal)?;
        self.deals.insert(deal.id.clone(), deal.clone());
        Ok(deal)
    }

    /// Deletes a deal.
    pub fn delete_deal(&mut self, id: &str) -> Result<(), Refusal> {
        self.deals
            .remove(id)
            .map(drop)
            .ok_or(Refusal::NotFound("Deal not found"))
    }

    /// `{totalDeals, totalValue, avgProbability, byStage:{<stage>:{count, value}}}`.
    pub fn pipeline_summary(&self) -> Value {
        let mut by_stage: Map<String, Value> = STAGES
            .iter()
            .map(|stage| ((*stage).to_owned(), json!({"count": 0, "value": 0.0})))
            .collect();
        let mut total_value = 0.0;
        let mut probability_sum = 0.0;
        for deal in self.deals.values() {
            total_value += deal.value;
            probability_sum += deal.probability;
            if let Some(stage) = by_stage.get_mut(&deal.stage) {
                stage["count"] = json!(stage["count"].as_u64().unwrap_or(0) + 1);
                stage["value"] = json!(stage["value"].as_f64().unwrap_or(0.0) + deal.value);
            }
        }
        let count = self.deals.len();
        let average = if count == 0 {
            0.0
        } else {
            probability_sum / count as f64
        };
        json!({
            "totalDeals": count,
            "totalValue": total_value,
            "avgProbability": average,
            "byStage": by_stage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-25T12:00:00.000Z";

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.data.iter().filter_map(|r| r["id"].as_str()).collect()
    }

    #[test]
    fn the_seed_pipeline_totals_427000() {
        let summary = Book::seeded().pipeline_summary();
        assert_eq!(summary["totalDeals"], 4);
        assert_eq!(summary["totalValue"], 427_000.0);
        assert_eq!(summary["byStage"]["negotiation"]["value"], 150_000.0);
        assert_eq!(summary["byStage"]["lost"]["count"], 0);
        assert_eq!(summary["avgProbability"], 68.75);
    }

    #[test]
    fn search_tags_sorting_and_paging() {
        let book = Book::seeded();
        let all = book.contacts(&ListQuery::default(), |_| true);
        assert_eq!(
            ids(&all),
            ["contact-4", "contact-3", "contact-2", "contact-1"]
        );
        let query = ListQuery {
            search: Some("TECH".into()),
            ..ListQuery::default()
        };
        assert_eq!(
            ids(&book.contacts(&query, |_| true)),
            ["contact-3", "contact-2"]
        );
        let query = ListQuery {
            tags: Some("partner, enterprise".into()),
            sort_by: Some("lastName".into()),
            sort_order: Some("asc".into()),
            ..ListQuery::default()
        };
        assert_eq!(
            ids(&book.contacts(&query, |_| true)),
            ["contact-3", "contact-1"]
        );
        let query = ListQuery {
            sort_by: Some("value".into()),
            skip: Some(1),
            take: Some(2),
            ..ListQuery::default()
        };
        let deals = book.deals(&query, |_| true);
        assert_eq!(deals.total, 4);
        assert_eq!(deals.data.len(), 2);
        assert_eq!(deals.data[1]["value"], 85_000.0);
        assert_eq!(deals.data[0]["contact"]["id"], deals.data[0]["contactId"]);
    }

    #[test]
    fn creation_validates_and_fills_defaults() {
        let mut book = Book::seeded();
        assert_eq!(
            book.create_contact(&body(json!({"firstName": "Ada"})), NOW),
            Err(Refusal::Invalid(
                "firstName, lastName, and email are required".into()
            ))
        );
        assert!(matches!(
            book.create_contact(&body(json!({"firstName": "Ada", "lastName": "L", "email": "nope"})), NOW),
            Err(Refusal::Invalid(message)) if message.contains("email")
        ));
        let ada = book
            .create_contact(
                &body(json!({"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "tags": ["vip"]})),
                NOW,
            )
            .unwrap_or_else(|refusal| panic!("{refusal:?}"));
        assert_eq!(ada.id, "contact-5");
        assert_eq!(ada.tags, ["vip"]);
        assert_eq!(
            book.create_deal(&body(json!({"title": "X", "stage": "lead"})), NOW),
            Err(Refusal::Invalid(
                "title, value, and stage are required".into()
            ))
        );
        assert!(matches!(
            book.create_deal(&body(json!({"title": "X", "value": 1, "stage": "dreaming"})), NOW),
            Err(Refusal::Invalid(message)) if message.starts_with("stage must be one of")
        ));
        let deal = book
            .create_deal(
                &body(
                    json!({"title": "X", "value": 1000, "stage": "lead", "contactId": "contact-5"}),
                ),
                NOW,
            )
            .unwrap_or_else(|refusal| panic!("{refusal:?}"));
        assert_eq!((deal.currency.as_str(), deal.probability), ("USD", 50.0));
        assert!(matches!(
            book.create_deal(&body(json!({"title": "X", "value": 1, "stage": "lead", "contactId": "contact-99"})), NOW),
            Err(Refusal::Invalid(message)) if message.contains("contact-99")
        ));
    }

    #[test]
    fn updates_merge_and_keep_identity() {
        let mut book = Book::seeded();
        let changed = book
            .update_contact(
                "contact-1",
                &body(json!({"id": "x", "company": "Initech", "phone": null})),
                NOW,
            )
            .unwrap_or_else(|refusal| panic!("{refusal:?}"));
        assert_eq!(changed.id, "contact-1");
        assert_eq!(changed.company.as_deref(), Some("Initech"));
        assert_eq!(changed.phone, None);
        assert_eq!(changed.first_name, "John");
        assert_eq!(changed.updated_at, NOW);
        assert!(matches!(
            book.update_deal("deal-1", &body(json!({"probability": 140})), NOW),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            book.update_deal("deal-1", &body(json!({"colour": "red"})), NOW),
            Err(Refusal::Invalid(message)) if message.contains("colour")
        ));
        assert_eq!(
            book.delete_deal("deal-9"),
            Err(Refusal::NotFound("Deal not found"))
        );
        assert_eq!(book.delete_contact("contact-2"), Ok(()));
        assert_eq!(book.contact_count(), 3);
    }
}
