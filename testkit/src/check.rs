//! An assertion over many cases at once (keys, races, placements) that fails with how many
//! went wrong and the first few of them, instead of one case or a wall of thousands.

use std::fmt::Debug;

/// How many failing cases a message shows.
const EXAMPLES: usize = 5;

/// Passes when `bad` is empty; otherwise panics with "`N` of `of` `what`, e.g. [first five]".
#[track_caller]
pub fn assert_none<T: Debug>(bad: &[T], of: usize, what: &str) {
    assert!(
        bad.is_empty(),
        "{} of {of} {what}, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(EXAMPLES)]
    );
}

#[cfg(test)]
mod tests {
    use super::assert_none;

    #[test]
    fn passes_on_none() {
        assert_none::<u8>(&[], 3, "keys lost");
    }

    #[test]
    #[should_panic(expected = "6 of 9 keys lost, e.g. [1, 2, 3, 4, 5]")]
    fn names_the_count_and_five_examples() {
        assert_none(&[1, 2, 3, 4, 5, 6], 9, "keys lost");
    }
}
