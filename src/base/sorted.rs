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

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::merge_join;

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
