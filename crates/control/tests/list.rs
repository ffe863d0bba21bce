//! List filters and pagination.

mod common;

use common::{upstream, Admin};
use serde_json::json;

async fn seed(admin: &Admin) {
    admin
        .put("/apisix/admin/upstreams/u1", upstream())
        .await
        .expect(201);
    for i in 0..25 {
        let mut route = json!({"uri": format!("/api/v{i}"), "upstream_id": "u1"});
        if i % 5 == 0 {
            route["name"] = json!(format!("orders-{i}"));
        }
        if i % 2 == 0 {
            route["labels"] = json!({"team": "a", "env": "prod"});
        } else {
            route["uris"] = json!([format!("/legacy/{i}"), "/other"]);
            route.as_object_mut().unwrap().remove("uri");
        }
        admin
            .put(&format!("/apisix/admin/routes/r{i:02}"), route)
            .await
            .expect(201);
    }
}

#[tokio::test]
async fn filters_by_name_label_uri_and_field() {
    let admin = Admin::start().await;
    seed(&admin).await;
    let all = admin.get("/apisix/admin/routes").await.json();
    assert_eq!(all["total"], 25);
    // Key order.
    assert_eq!(all["list"][0]["value"]["id"], "r00");

    let named = admin.get("/apisix/admin/routes?name=orders").await.json();
    assert_eq!(named["total"], 5);
    let named = admin
        .get("/apisix/admin/routes?name=%5Eorders-1")
        .await
        .json();
    assert_eq!(named["total"], 2, "{named}"); // orders-10, orders-15
    let labelled = admin.get("/apisix/admin/routes?label=team").await.json();
    assert_eq!(labelled["total"], 13);
    // Label filters match keys only.
    let by_value = admin.get("/apisix/admin/routes?label=a").await.json();
    assert_eq!(by_value["total"], 0);
    let by_uri = admin.get("/apisix/admin/routes?uri=legacy/1").await.json();
    assert_eq!(by_uri["total"], 6, "{by_uri}"); // 1, 11, 13, 15, 17, 19
    let combined = admin
        .get("/apisix/admin/routes?uri=v1&label=team")
        .await
        .json();
    assert_eq!(combined["total"], 5); // v10 v12 v14 v16 v18
    let by_field = admin
        .get("/apisix/admin/routes?filter=upstream_id%3Du1")
        .await
        .json();
    assert_eq!(by_field["total"], 25);
    let by_field = admin
        .get("/apisix/admin/routes?filter=upstream_id%3Dnope")
        .await
        .json();
    assert_eq!(by_field["total"], 0);
}

#[tokio::test]
async fn pagination_by_creation_order() {
    let admin = Admin::start().await;
    seed(&admin).await;
    let page = admin
        .get("/apisix/admin/routes?page=3&page_size=10")
        .await
        .expect(200)
        .json();
    assert_eq!(page["total"], 25);
    assert_eq!(page["list"].as_array().unwrap().len(), 5);
    assert_eq!(page["list"][0]["value"]["id"], "r20");
    let first = admin
        .get("/apisix/admin/routes?page=0&page_size=10")
        .await
        .json();
    assert_eq!(first["list"][0]["value"]["id"], "r00");
    let e = admin
        .get("/apisix/admin/routes?page=1&page_size=5")
        .await
        .expect(400);
    assert_eq!(e.text, "page_size must be between 10 and 500");
    let e = admin
        .get("/apisix/admin/routes?page=1&page_size=501")
        .await
        .expect(400);
    assert_eq!(e.text, "page_size must be between 10 and 500");
    // Pagination needs both parameters.
    let all = admin.get("/apisix/admin/routes?page_size=10").await.json();
    assert_eq!(all["list"].as_array().unwrap().len(), 25);
}
