//! Byte ranges of a served file (RFC 9110 §14): what a `Range` header asks of a file of a given
//! size, and the layout of a `multipart/byteranges` body.
//!
//! Pure: no I/O and no request or response types, so the decision can be tested and fuzzed
//! on its own. Serving (`serve.rs`) turns the answer into headers and reads the bytes.

use bytes::Bytes;

/// More ranges than this in one request are answered with the whole file.
pub const MAX_RANGES: usize = 32;

/// A non-empty run of bytes inside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub length: u64,
}

impl ByteRange {
    /// The position of the last byte (inclusive), as `Content-Range` names it.
    pub fn last(&self) -> u64 {
        self.start + self.length - 1
    }

    /// The `Content-Range` value of this range of a file of `size` bytes.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.last())
    }
}

/// What a `Range` header gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole file: no header, nothing usable in it, or too many ranges.
    Whole,
    /// 206: one range as a plain body, more as `multipart/byteranges`.
    Partial(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// The answer to `Range: <header>` for a file of `size` bytes.
pub fn answer(header: &str, size: u64) -> RangeAnswer {
    use http_range::{HttpRange, HttpRangeParseError};
    let ranges = match HttpRange::parse(header, size) {
        Ok(ranges) => ranges,
        // Every range starts past the end.
        Err(HttpRangeParseError::NoOverlap) => return RangeAnswer::Unsatisfiable,
        // Another unit, which must be ignored, or a malformed set, which may be
        // (RFC 9110 §14.2): nothing in it can be satisfied.
        Err(HttpRangeParseError::InvalidRange) => return RangeAnswer::Whole,
    };
    // A suffix range of an empty file is satisfiable but holds no byte, and no
    // `Content-Range` can name it: the (empty) whole file answers.
    if ranges.is_empty() || ranges.len() > MAX_RANGES || ranges.iter().any(|r| r.length == 0) {
        return RangeAnswer::Whole;
    }
    // Ranges that overlap so much they add up to more than the file would let one small
    // request make the server send the file many times over: the whole file is cheaper.
    let total = ranges
        .iter()
        .try_fold(0u64, |sum, r| sum.checked_add(r.length));
    if total.is_none_or(|total| total > size) {
        return RangeAnswer::Whole;
    }
    RangeAnswer::Partial(
        ranges
            .iter()
            .map(|r| ByteRange {
                start: r.start,
                length: r.length,
            })
            .collect(),
    )
}

/// One piece of a response body: literal text, or `(start, length)` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(Bytes),
    Range(u64, u64),
}

/// The body of a `multipart/byteranges` answer: each range under its own part header, then
/// the closing delimiter.
pub fn multipart(
    ranges: &[ByteRange],
    boundary: &str,
    content_type: &str,
    size: u64,
) -> Vec<Segment> {
    let mut out = Vec::with_capacity(ranges.len() * 2 + 1);
    for r in ranges {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            r.content_range(size)
        );
        out.push(Segment::Text(Bytes::from(head)));
        out.push(Segment::Range(r.start, r.length));
    }
    out.push(Segment::Text(Bytes::from(format!(
        "\r\n--{boundary}--\r\n"
    ))));
    out
}

/// The number of bytes a body made of `segments` has.
pub fn body_len(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| match s {
            Segment::Text(b) => b.len() as u64,
            Segment::Range(_, len) => *len,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_multiple_ranges_and_none() {
        assert_eq!(
            answer("bytes=0-9", 100),
            RangeAnswer::Partial(vec![ByteRange {
                start: 0,
                length: 10
            }])
        );
        assert_eq!(
            answer("bytes=-5", 100),
            RangeAnswer::Partial(vec![ByteRange {
                start: 95,
                length: 5
            }])
        );
        match answer("bytes=0-0,10-", 20) {
            RangeAnswer::Partial(r) => assert_eq!(r.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(answer("", 100), RangeAnswer::Whole);
        assert_eq!(answer("bytes=100-", 100), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn range_in_another_unit_or_malformed_is_ignored_not_416() {
        for header in [
            "items=0-5",
            "bytes=abc",
            "bytes=5-4",
            "bytes=0-1,x",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(answer(header, 100), RangeAnswer::Whole, "{header}");
        }
        assert_eq!(answer("bytes=200-", 100), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn suffix_range_of_an_empty_file_gets_the_empty_file_not_a_wrapped_content_range() {
        assert_eq!(answer("bytes=-5", 0), RangeAnswer::Whole);
        assert_eq!(answer("bytes=-5,0-", 0), RangeAnswer::Whole);
        assert_eq!(answer("bytes=0-", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(answer("bytes=-0", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn overlapping_ranges_adding_up_to_more_than_the_file_get_the_whole_file_once() {
        assert_eq!(answer("bytes=0-,0-,0-", 1000), RangeAnswer::Whole);
        assert_eq!(answer("bytes=0-,1-", u64::MAX), RangeAnswer::Whole);
        match answer("bytes=0-10,5-15", 1000) {
            RangeAnswer::Partial(r) => assert_eq!(r.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn more_than_the_limit_gets_the_whole_file() {
        let many = (0..=MAX_RANGES)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>();
        assert_eq!(
            answer(&format!("bytes={}", many.join(",")), 1000),
            RangeAnswer::Whole
        );
    }

    #[test]
    fn multipart_length_counts_every_part() {
        let ranges = [
            ByteRange {
                start: 0,
                length: 2,
            },
            ByteRange {
                start: 5,
                length: 3,
            },
        ];
        let segments = multipart(&ranges, "b", "text/plain", 10);
        assert_eq!(segments.len(), 5);
        assert_eq!(
            segments[0],
            Segment::Text(Bytes::from_static(
                b"\r\n--b\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n"
            ))
        );
        let text: u64 = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Text(t) => Some(t.len() as u64),
                Segment::Range(..) => None,
            })
            .sum();
        assert_eq!(body_len(&segments), text + 5);
    }
}
