//! The canonical encoding of arguments behind default keys.
//!
//! Every value is written as a tagged, length-prefixed, little-endian byte stream, so the
//! same argument values give the same bytes in every process and on every platform:
//! integers are widened (`1u8` and `1u64` encode alike), struct fields and enum variants
//! are written with their names, and map entries are sorted by their encoding. Sets are
//! sequences to serde: a `HashSet` argument iterates in an unspecified order, so use a
//! `BTreeSet` or `get_key` for those.
//!
//! The bytes go to a [`Sink`] (registers, then the stack, for small arguments) and are
//! hashed with xxh3-128.

use serde::ser::{self, Serialize};
use std::fmt;
use xxhash_rust::xxh3::xxh3_128;

use crate::key::sink::{Out, Sink};

mod tag {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const UINT: u8 = 3;
    pub const U128: u8 = 4;
    pub const I128: u8 = 5;
    pub const FLOAT: u8 = 6;
    pub const CHAR: u8 = 7;
    pub const STR: u8 = 8;
    pub const BYTES: u8 = 9;
    pub const NONE: u8 = 10;
    pub const SOME: u8 = 11;
    pub const UNIT: u8 = 12;
    pub const UNIT_VARIANT: u8 = 13;
    pub const NEWTYPE_VARIANT: u8 = 14;
    pub const SEQ: u8 = 15;
    pub const END: u8 = 16;
    pub const TUPLE_VARIANT: u8 = 17;
    pub const MAP: u8 = 18;
    pub const STRUCT: u8 = 19;
    pub const STRUCT_VARIANT: u8 = 20;
}

/// xxh3-128 of the canonical encoding of `value`.
#[inline(always)]
pub fn hash<T: Serialize + ?Sized>(value: &T) -> u128 {
    let mut sink = Sink::new();
    match value.serialize(&mut Encoder { out: &mut sink }) {
        Ok(()) => sink.hash(),
        // A `Serialize` impl that fails cannot be keyed canonically; fall back to its
        // error text so the call still works (it then shares a key with equal failures).
        Err(e) => xxh3_128(e.0.as_bytes()),
    }
}

/// The canonical encoding itself (for tests).
#[cfg(test)]
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut sink = Sink::new();
    let _ = value.serialize(&mut Encoder { out: &mut sink });
    sink.take_vec()
}

/// A `Serialize` impl failed.
#[derive(Debug)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

struct Encoder<'a, O: Out> {
    out: &'a mut O,
}

impl<O: Out> Encoder<'_, O> {
    #[inline(always)]
    fn tag(&mut self, t: u8) {
        self.out.put_byte(t);
    }
    #[inline]
    fn str(&mut self, s: &str) {
        self.out.put_u64(s.len() as u64);
        self.out.put(s.as_bytes());
    }
}

type Res = Result<(), EncodeError>;

impl<'a, 'b, O: Out> ser::Serializer for &'a mut Encoder<'b, O> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapEncoder<'a, 'b, O>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline(always)]
    fn serialize_bool(self, v: bool) -> Res {
        self.out.put(&[tag::BOOL, v as u8]);
        Ok(())
    }
    #[inline(always)]
    fn serialize_i8(self, v: i8) -> Res {
        self.serialize_i64(v as i64)
    }
    #[inline(always)]
    fn serialize_i16(self, v: i16) -> Res {
        self.serialize_i64(v as i64)
    }
    #[inline(always)]
    fn serialize_i32(self, v: i32) -> Res {
        self.serialize_i64(v as i64)
    }
    #[inline(always)]
    fn serialize_i64(self, v: i64) -> Res {
        self.tag(tag::INT);
        self.out.put_u64(v as u64);
        Ok(())
    }
    #[inline(always)]
    fn serialize_i128(self, v: i128) -> Res {
        self.tag(tag::I128);
        self.out.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline(always)]
    fn serialize_u8(self, v: u8) -> Res {
        self.serialize_u64(v as u64)
    }
    #[inline(always)]
    fn serialize_u16(self, v: u16) -> Res {
        self.serialize_u64(v as u64)
    }
    #[inline(always)]
    fn serialize_u32(self, v: u32) -> Res {
        self.serialize_u64(v as u64)
    }
    #[inline(always)]
    fn serialize_u64(self, v: u64) -> Res {
        self.tag(tag::UINT);
        self.out.put_u64(v);
        Ok(())
    }
    #[inline(always)]
    fn serialize_u128(self, v: u128) -> Res {
        self.tag(tag::U128);
        self.out.put(&v.to_le_bytes());
        Ok(())
    }
    #[inline(always)]
    fn serialize_f32(self, v: f32) -> Res {
        self.serialize_f64(v as f64)
    }
    #[inline(always)]
    fn serialize_f64(self, v: f64) -> Res {
        self.tag(tag::FLOAT);
        // One NaN, one zero: equal-looking values give equal keys.
        let v = if v.is_nan() {
            f64::NAN
        } else if v == 0.0 {
            0.0
        } else {
            v
        };
        self.out.put_u64(v.to_bits());
        Ok(())
    }
    #[inline(always)]
    fn serialize_char(self, v: char) -> Res {
        self.tag(tag::CHAR);
        self.out.put(&(v as u32).to_le_bytes());
        Ok(())
    }
    #[inline(always)]
    fn serialize_str(self, v: &str) -> Res {
        self.tag(tag::STR);
        self.str(v);
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Res {
        self.tag(tag::BYTES);
        self.out.put_u64(v.len() as u64);
        self.out.put(v);
        Ok(())
    }
    #[inline(always)]
    fn serialize_none(self) -> Res {
        self.tag(tag::NONE);
        Ok(())
    }
    #[inline(always)]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Res {
        self.tag(tag::SOME);
        value.serialize(self)
    }
    #[inline(always)]
    fn serialize_unit(self) -> Res {
        self.tag(tag::UNIT);
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        self.serialize_unit()
    }
    #[inline]
    fn serialize_unit_variant(self, _name: &'static str, _i: u32, variant: &'static str) -> Res {
        self.tag(tag::UNIT_VARIANT);
        self.str(variant);
        Ok(())
    }
    #[inline(always)]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Res {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        self.tag(tag::NEWTYPE_VARIANT);
        self.str(variant);
        value.serialize(self)
    }
    #[inline(always)]
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, EncodeError> {
        self.tag(tag::SEQ);
        Ok(self)
    }
    #[inline(always)]
    fn serialize_tuple(self, _len: usize) -> Result<Self, EncodeError> {
        self.tag(tag::SEQ);
        Ok(self)
    }
    #[inline(always)]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        self.tag(tag::SEQ);
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, EncodeError> {
        self.tag(tag::TUPLE_VARIANT);
        self.str(variant);
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<MapEncoder<'a, 'b, O>, EncodeError> {
        Ok(MapEncoder { parent: self, entries: Vec::new(), current: Vec::new() })
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, EncodeError> {
        self.tag(tag::STRUCT);
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, EncodeError> {
        self.tag(tag::STRUCT_VARIANT);
        self.str(variant);
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        // Compact forms (e.g. of IP addresses) are canonical enough and cheaper.
        false
    }
}

macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl<O: Out> ser::$trait for &mut Encoder<'_, O> {
            type Ok = ();
            type Error = EncodeError;
            #[inline(always)]
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
                value.serialize(&mut **self)
            }
            #[inline(always)]
            fn end(self) -> Res {
                self.tag(tag::END);
                Ok(())
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl<O: Out> ser::$trait for &mut Encoder<'_, O> {
            type Ok = ();
            type Error = EncodeError;
            #[inline]
            fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Res {
                self.str(key);
                value.serialize(&mut **self)
            }
            #[inline]
            fn end(self) -> Res {
                self.tag(tag::END);
                Ok(())
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

#[doc(hidden)]
/// Encodes each map entry on its own, then writes them sorted, so that the iteration
/// order of a `HashMap` never reaches the key.
pub struct MapEncoder<'a, 'b, O: Out> {
    parent: &'a mut Encoder<'b, O>,
    entries: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl<O: Out> ser::SerializeMap for MapEncoder<'_, '_, O> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Res {
        self.current.clear();
        key.serialize(&mut Encoder { out: &mut self.current })
    }

    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        value.serialize(&mut Encoder { out: &mut self.current })?;
        self.entries.push(std::mem::take(&mut self.current));
        Ok(())
    }

    #[inline(always)]
    fn end(mut self) -> Res {
        self.entries.sort_unstable();
        self.parent.tag(tag::MAP);
        for entry in &self.entries {
            self.parent.out.put(entry);
        }
        self.parent.tag(tag::END);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn hash_is_xxh3_of_the_encoding_at_every_length() {
        fn check<T: Serialize + ?Sized>(v: &T) {
            assert_eq!(hash(v), xxh3_128(&encode(v)), "{:?}", encode(v));
        }
        check(&());
        check(&(7u64,));
        check(&(u64::MAX,));
        check(&(-3i32,));
        check(&(1.5f64,));
        check(&(true,));
        check(&('x',));
        check(&(1u8, 2u8));
        check(&(1u64, 2u64, 3u64));
        check(&("",));
        check(&("a",));
        check(&("rust-lang/rust@1.95.0-ab",));
        check(&(Some(3u64),));
        check(&(None::<u64>,));
        check(&("x".repeat(300), 4u64));
        check(&(vec![1u64; 40],));
        check(&(1u128,));
    }

    #[test]
    fn widened_integers_encode_alike() {
        assert_eq!(encode(&1u8), encode(&1u64));
        assert_eq!(encode(&-1i16), encode(&-1i64));
        assert_ne!(encode(&1u64), encode(&1i64));
    }

    #[test]
    fn map_order_does_not_matter() {
        let mut a = HashMap::new();
        let mut b = BTreeMap::new();
        for i in 0..50u32 {
            a.insert(format!("k{i}"), i);
            b.insert(format!("k{i}"), i);
        }
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn strings_are_length_prefixed() {
        assert_ne!(hash(&("ab", "c")), hash(&("a", "bc")));
    }

    #[test]
    fn large_values_spill_to_the_heap_consistently() {
        let big = "z".repeat(1000);
        assert_eq!(hash(&big), xxh3_128(&encode(&big)));
    }
}
