use larder::cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Profile {
    name: String,
}

#[derive(Debug, Clone)]
struct FetchError;

#[cached(max_age = "1m", swr)]
async fn profiles(team: u64) -> Result<Vec<Profile>, FetchError> {
    Ok(vec![Profile {
        name: format!("team {team}"),
    }])
}

fn main() {}
