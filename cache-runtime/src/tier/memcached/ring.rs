//! Which server holds a key: a consistent-hashing ring, compatible with ketama (the scheme of
//! libmemcached's `MEMCACHED_BEHAVIOR_KETAMA`, spymemcached and most clients), so that processes
//! of any of them agree on where a key lives, and adding a server moves about `1 / n` of the keys
//! (all of them to the new server) instead of nearly all of them.
//!
//! Each server `host:port` puts 160 points on a 32-bit circle: for `i` in `0..40`, the MD5 of
//! `"host:port-i"` gives four little-endian 32-bit points. A key belongs to the server of the first
//! point at or after the first four bytes (little-endian) of the key's MD5, wrapping around.

/// Digests per server; each gives four points.
const DIGESTS: usize = 40;

/// The ring of a backend's servers.
#[derive(Debug)]
pub(super) struct Ring {
    /// `(point, server index)`, sorted.
    points: Vec<(u32, usize)>,
}

impl Ring {
    /// The ring of `servers` (`host:port` each), in the order given (a server's index).
    pub(super) fn new(servers: &[String]) -> Self {
        let mut points = Vec::with_capacity(servers.len() * DIGESTS * 4);
        for (index, server) in servers.iter().enumerate() {
            for i in 0..DIGESTS {
                let digest = md5::compute(format!("{server}-{i}")).0;
                for h in 0..4 {
                    points.push((point(&digest, h), index));
                }
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The index of the server that holds `key`.
    pub(super) fn server(&self, key: &str) -> usize {
        // One server: no hashing at all.
        if self.points.len() <= DIGESTS * 4 {
            return 0;
        }
        let h = point(&md5::compute(key.as_bytes()).0, 0);
        let at = self.points.partition_point(|&(p, _)| p < h);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |&(_, server)| server)
    }
}

/// The `h`-th little-endian 32-bit word of a digest.
fn point(digest: &[u8; 16], h: usize) -> u32 {
    u32::from_le_bytes([
        digest[h * 4],
        digest[h * 4 + 1],
        digest[h * 4 + 2],
        digest[h * 4 + 3],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.1.{}:11211", i + 1)).collect()
    }

    #[test]
    fn keys_land_where_other_ketama_clients_put_them() {
        // Computed with uhashring 2.5 (Python, `HashRing(nodes, hash_fn="ketama")`), an
        // independent ketama implementation, for these three servers.
        let ring = Ring::new(&servers(3));
        assert_eq!(ring.points.len(), 480);
        let expected = [1, 1, 0, 1, 1, 1, 2, 0, 2, 1, 0, 1];
        for (i, server) in expected.into_iter().enumerate() {
            assert_eq!(
                ring.server(&format!("app:users:1a2b3c4d:{i:016x}")),
                server,
                "key {i}"
            );
        }
        for (key, server) in [("", 2), ("a", 2), ("foo", 1), ("ketama", 2)] {
            assert_eq!(ring.server(key), server, "{key:?}");
        }
    }

    #[test]
    fn keys_spread_over_servers_and_adding_one_moves_a_quarter_all_to_it() {
        let three = Ring::new(&servers(3));
        let four = Ring::new(&servers(4));
        let keys: Vec<String> = (0..20_000)
            .map(|i| format!("app:users:0000:{i:016x}"))
            .collect();
        let mut per_server = [0usize; 3];
        let mut moved = 0;
        for k in &keys {
            let before = three.server(k);
            per_server[before] += 1;
            let after = four.server(k);
            if after != before {
                moved += 1;
                assert_eq!(after, 3, "a key moved between old servers");
            }
        }
        // Balanced within what 160 points a server give (each within 25% of a third).
        for n in per_server {
            assert!((5_000..=8_400).contains(&n), "{per_server:?}");
        }
        // About a quarter of the keys move (to the new server), not nearly all.
        let share = moved as f64 / keys.len() as f64;
        assert!((0.15..=0.35).contains(&share), "moved {share}");
    }

    #[test]
    fn one_server_takes_every_key() {
        let ring = Ring::new(&servers(1));
        assert!((0..100).all(|i| ring.server(&i.to_string()) == 0));
    }
}
