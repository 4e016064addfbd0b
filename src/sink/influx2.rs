//! The start-up check of an InfluxDB 2 target, through the `influxdb2`
//! client: `/health`, then the organisation and the bucket by name. A
//! missing organisation or bucket, or a refused token, is a configuration
//! error with what to do; a server that is down only delays the writes (they
//! are spooled); a server that answers the v2 write API without being
//! InfluxDB 2 (VictoriaMetrics, a proxy) is written to as it is.
//!
//! Writes stay on the sink's own HTTP client (`influx`): `influxdb2`'s write
//! call reports neither `Retry-After` nor the server's status in a form the
//! retry and dead-letter rules need.

use std::time::Duration;

use influxdb2::{
    api::{buckets::ListBucketsRequest, organization::ListOrganizationRequest},
    models::health::Status,
    RequestError,
};
use thiserror::Error;

use super::influx::Target;

/// What the check found, when the writes can go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// InfluxDB 2 is up, and the organisation and bucket exist.
    Ready {
        /// The server's version, as `/health` gives it.
        version: String,
    },
    /// The server answers, but not as InfluxDB 2 does (no v2 management
    /// API): written to with the v2 write API as configured.
    NotInfluxDb2(String),
    /// Not reachable now (down, not ready, timed out): points are spooled
    /// until it is.
    Unreachable(String),
}

/// A target the writes can never succeed against.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckError {
    /// The organisation does not exist.
    #[error(
        "InfluxDB at {url} has no organisation `{org}`: set influxdb.org (INFLUXDB_ORG) to an \
         existing one, or create it (influx org create -n {org})"
    )]
    OrgMissing {
        /// Server.
        url: String,
        /// Organisation.
        org: String,
    },
    /// The bucket does not exist in the organisation.
    #[error(
        "InfluxDB at {url} has no bucket `{bucket}` in organisation `{org}`: set influxdb.bucket \
         (INFLUXDB_BUCKET), or create it (influx bucket create -n {bucket} -o {org})"
    )]
    BucketMissing {
        /// Server.
        url: String,
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
    },
    /// The token was refused.
    #[error(
        "InfluxDB at {url} refused the token (HTTP {status}): set influxdb.token (INFLUXDB_TOKEN) \
         to a token that can write to the bucket"
    )]
    Unauthorized {
        /// Server.
        url: String,
        /// HTTP status.
        status: u16,
    },
}

/// Checks `target` (an InfluxDB 2 URL), waiting at most `within`.
pub fn check(target: &Target, within: Duration) -> Result<Readiness, CheckError> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Ok(Readiness::Unreachable(format!("no runtime: {e}"))),
    };
    rt.block_on(async {
        match tokio::time::timeout(within, check_async(target)).await {
            Ok(r) => r,
            Err(_) => Ok(Readiness::Unreachable(format!(
                "no answer within {} s",
                within.as_secs_f64()
            ))),
        }
    })
}

async fn check_async(target: &Target) -> Result<Readiness, CheckError> {
    let url = target.url.trim_end_matches('/').to_string();
    let client = match influxdb2::ClientBuilder::new(
        url.clone(),
        target.org.clone(),
        target.token.expose().to_string(),
    )
    .build()
    {
        Ok(c) => c,
        Err(e) => return Ok(Readiness::Unreachable(e.to_string())),
    };
    let version = match client.health().await {
        Ok(h) if h.status == Status::Pass => h.version.unwrap_or_default(),
        Ok(h) => {
            return Ok(Readiness::Unreachable(format!(
                "health: {}",
                h.message.unwrap_or_else(|| "fail".into())
            )))
        }
        Err(RequestError::ReqwestProcessing { source }) => {
            return Ok(if source.is_decode() {
                Readiness::NotInfluxDb2("/health is not InfluxDB 2's".into())
            } else {
                Readiness::Unreachable(crate::errors::error_line(&source))
            });
        }
        Err(RequestError::Http { status, .. }) if status.as_u16() == 503 => {
            return Ok(Readiness::Unreachable("HTTP 503 (starting?)".into()))
        }
        Err(e) => return Ok(Readiness::NotInfluxDb2(crate::errors::error_line(&e))),
    };
    let refused = |status: u16| CheckError::Unauthorized {
        url: url.clone(),
        status,
    };
    let orgs = client
        .list_organizations(ListOrganizationRequest {
            org: Some(target.org.clone()),
            ..ListOrganizationRequest::default()
        })
        .await;
    match orgs {
        Ok(o) if o.orgs.iter().any(|x| x.name == target.org) => {}
        Ok(_) => {
            return Err(CheckError::OrgMissing {
                url,
                org: target.org.clone(),
            })
        }
        Err(RequestError::Http { status, .. }) if status.as_u16() == 404 => {
            return Err(CheckError::OrgMissing {
                url,
                org: target.org.clone(),
            })
        }
        Err(RequestError::Http { status, .. }) if matches!(status.as_u16(), 401 | 403) => {
            return Err(refused(status.as_u16()))
        }
        Err(e) => return Ok(Readiness::NotInfluxDb2(crate::errors::error_line(&e))),
    }
    let buckets = client
        .list_buckets(Some(ListBucketsRequest {
            name: Some(target.bucket.clone()),
            org: Some(target.org.clone()),
            ..ListBucketsRequest::default()
        }))
        .await;
    match buckets {
        Ok(b) if b.buckets.iter().any(|x| x.name == target.bucket) => {
            Ok(Readiness::Ready { version })
        }
        Ok(_) => Err(CheckError::BucketMissing {
            url,
            org: target.org.clone(),
            bucket: target.bucket.clone(),
        }),
        Err(RequestError::Http { status, .. }) if status.as_u16() == 404 => {
            Err(CheckError::BucketMissing {
                url,
                org: target.org.clone(),
                bucket: target.bucket.clone(),
            })
        }
        Err(RequestError::Http { status, .. }) if matches!(status.as_u16(), 401 | 403) => {
            Err(refused(status.as_u16()))
        }
        Err(e) => Ok(Readiness::NotInfluxDb2(crate::errors::error_line(&e))),
    }
}
