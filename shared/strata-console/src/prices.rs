//! The dated price table `strata cost` and the console price a workload
//! with; every entry can be overridden by name (`--price NAME=VALUE`).

/// When the default prices were read from the public price pages.
pub const PRICES_AS_OF: &str = "public list prices, us-east-1, as of 2025-2026";

/// Every price the model uses ($). Names are what `--price NAME=VALUE` takes.
#[derive(Debug, Clone)]
pub struct Prices {
    entries: Vec<(&'static str, f64, &'static str)>,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            entries: vec![
                (
                    "s3_put_per_million",
                    5.00,
                    "S3 Standard PUT, COPY, POST, LIST",
                ),
                ("s3_get_per_million", 0.40, "S3 Standard GET, HEAD"),
                ("s3_gb_month", 0.023, "S3 Standard storage"),
                (
                    "express_put_per_million",
                    1.13,
                    "S3 Express One Zone PUT, LIST",
                ),
                (
                    "express_get_per_million",
                    0.03,
                    "S3 Express One Zone GET, HEAD",
                ),
                ("express_gb_month", 0.11, "S3 Express One Zone storage"),
                ("lambda_requests_per_million", 0.20, "Lambda requests"),
                (
                    "lambda_gb_second",
                    0.000_013_333_4,
                    "Lambda duration (arm64)",
                ),
                (
                    "http_api_per_million",
                    1.00,
                    "API Gateway HTTP API requests",
                ),
                ("vm_month", 24.53, "one VM (t4g.medium on demand)"),
                ("lb_month", 22.27, "a load balancer (ALB, one LCU)"),
                (
                    "ddb_write_per_million",
                    0.625,
                    "DynamoDB on-demand write request units",
                ),
                (
                    "ddb_read_per_million",
                    0.125,
                    "DynamoDB on-demand read request units",
                ),
                ("ddb_gb_month", 0.25, "DynamoDB Standard table storage"),
                ("ddb_wcu_hour", 0.00065, "DynamoDB provisioned WCU-hour"),
                ("ddb_rcu_hour", 0.00013, "DynamoDB provisioned RCU-hour"),
            ],
        }
    }
}

impl Prices {
    pub fn get(&self, name: &str) -> f64 {
        self.entries
            .iter()
            .find(|e| e.0 == name)
            .map_or(0.0, |e| e.1)
    }

    /// Applies `NAME=VALUE` overrides.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("--price takes NAME=VALUE, not {spec:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("--price {name}: {value:?} is not a number"))?;
        let Some(e) = self.entries.iter_mut().find(|e| e.0 == name) else {
            let known: Vec<&str> = self.entries.iter().map(|e| e.0).collect();
            return Err(format!(
                "--price: unknown price {name:?} (known: {})",
                known.join(", ")
            ));
        };
        e.1 = value;
        Ok(())
    }

    /// (name, $, what it prices) for every entry.
    pub fn entries(&self) -> &[(&'static str, f64, &'static str)] {
        &self.entries
    }

    pub fn table(&self) -> String {
        self.entries
            .iter()
            .map(|(n, v, what)| format!("  {n:<28} {v:>12} {what}\n"))
            .collect()
    }
}
