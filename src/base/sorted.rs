//! Walking two ascending sequences together (a merge join): one pass, no lookups, for ordered sets
//! and maps of a million keys.

use std::cmp::Ordering;
use std::iter::Peekable;

/// Each key of two ascending, duplicate-free sequences once, with its value on the left (`a`),
/// on the right (`b`), or both.
pub fn merge_join<K: Ord, V, W>(
    a: impl Iterator<Item = (K, V)>,
    b: impl Iterator<Item = (K, W)>,
) -> impl Iterator<Item = (K, Option<V>, Option<W>)> {
    let (mut a, mut b): (Peekable<_>, Peekable<_>) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((x, _)), Some((y, _))) => x.cmp(y),
        };
        Some(match order {
            Ordering::Less => a.next().map(|(k, v)| (k, Some(v), None))?,
            Ordering::Greater => b.next().map(|(k, w)| (k, None, Some(w)))?,
            Ordering::Equal => {
                let (k, v) = a.next()?;
                (k, Some(v), b.next().map(|(_, w)| w))
            }
        })
    })
}

/// Adds `items` to an ordered set or map in one bulk build: `FromIterator` sorts them (the entries
/// already held are one sorted run) and builds the tree bottom up, where inserting a million keys
/// one at a time walks the tree a million times. Of equal keys, the last one added stays.
pub fn extend_in_bulk<C, T>(collection: &mut C, items: Vec<T>)
where
    C: Default + IntoIterator<Item = T> + FromIterator<T>,
{
    *collection = std::mem::take(collection).into_iter().chain(items).collect();
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::collections::BTreeMap;

    use super::{extend_in_bulk, merge_join};

    #[test]
    fn extend_in_bulk_keeps_the_entries_held_and_the_last_of_equal_keys() {
        let mut map = BTreeMap::from([(2, "held"), (5, "held")]);
        extend_in_bulk(&mut map, vec![(9, "a"), (1, "a"), (5, "first"), (5, "last")]);
        assert_eq!(map.into_iter().collect::<Vec<_>>(), vec![(1, "a"), (2, "held"), (5, "last"), (9, "a")]);
    }

    #[test]
    fn merge_join_yields_each_key_once_with_the_sides_holding_it() {
        let a = [(1, 'a'), (3, 'c'), (4, 'd')];
        let b = [(2, 20), (3, 30), (5, 50)];
        let joined: Vec<_> = merge_join(a.into_iter(), b.into_iter()).collect();
        assert_eq!(
            joined,
            vec![(1, Some('a'), None), (2, None, Some(20)), (3, Some('c'), Some(30)), (4, Some('d'), None), (5, None, Some(50))]
        );
        assert_eq!(merge_join(std::iter::empty::<(u8, ())>(), std::iter::empty::<(u8, ())>()).count(), 0);
    }
}
