//! What a `#[cached(batch)]` function's expansion calls: its body's map in and out of the
//! `HashMap` that `Cache::get_or_load_many` takes and gives.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;

/// The body's map of the keys it found (any map, or anything that iterates `(key, value)`).
#[inline]
pub fn batch_found<K, V, M>(found: M) -> Result<HashMap<K, V>, Infallible>
where
    K: Hash + Eq,
    M: IntoIterator<Item = (K, V)>,
{
    Ok(found.into_iter().collect())
}

/// The body's `Result` of a map: an `Err` fails the batch (nothing is cached).
#[inline]
pub fn batch_found_result<K, V, M, E>(found: Result<M, E>) -> Result<HashMap<K, V>, E>
where
    K: Hash + Eq,
    M: IntoIterator<Item = (K, V)>,
{
    found.map(|m| m.into_iter().collect())
}

/// The function's answer: every key found, as the map type it returns.
#[inline]
pub fn batch_answer<K, V, M>(answer: Result<HashMap<K, V>, Infallible>) -> M
where
    M: FromIterator<(K, V)>,
{
    match answer {
        Ok(found) => found.into_iter().collect(),
        Err(never) => match never {},
    }
}

/// The function's answer, or the body's error.
///
/// # Errors
/// The body's error.
#[inline]
pub fn batch_answer_result<K, V, M, E>(answer: Result<HashMap<K, V>, E>) -> Result<M, E>
where
    M: FromIterator<(K, V)>,
{
    answer.map(|found| found.into_iter().collect())
}
