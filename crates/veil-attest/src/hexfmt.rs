//! Serde helpers that write byte strings as lower-case hex, the form people
//! compare with `sha256sum` output and paste into policies.

use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "hexfmt")]` for `Vec<u8>` and fixed arrays.
pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v.as_ref()))
}

/// Reads lower- or upper-case hex.
pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    let bytes = hex::decode(s.trim()).map_err(serde::de::Error::custom)?;
    T::try_from(bytes).map_err(|_| serde::de::Error::custom("hex value has the wrong length"))
}

/// `#[serde(with = "hexfmt::option")]` for `Option<Vec<u8>>`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `None` as null and `Some(bytes)` as hex.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    /// Reads null or hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| hex::decode(s.trim()).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `#[serde(with = "hexfmt::map")]` for `BTreeMap<K, Vec<u8>>`.
pub mod map {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes each value as hex.
    pub fn serialize<S: Serializer, K: Serialize>(
        v: &BTreeMap<K, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, b) in v {
            m.serialize_entry(k, &hex::encode(b))?;
        }
        m.end()
    }

    /// Reads each value as hex.
    pub fn deserialize<'de, D: Deserializer<'de>, K: Deserialize<'de> + Ord>(
        d: D,
    ) -> Result<BTreeMap<K, Vec<u8>>, D::Error> {
        let m = BTreeMap::<K, String>::deserialize(d)?;
        m.into_iter()
            .map(|(k, s)| {
                hex::decode(s.trim())
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}
