//! The request fields DynamoDB restricts to a set of values, each parsed
//! once into its own type ([`crate::req::Req::choice`]): no handler
//! compares strings, and a value outside the set is refused with
//! DynamoDB's enum message listing the set in its order.

/// A field whose value is one of a fixed set.
pub trait Choice: Sized + Copy + 'static {
    /// The member's name in the request.
    const FIELD: &'static str;
    /// Its wire values, in the order DynamoDB lists them when refusing one.
    const VALUES: &'static [(&'static str, Self)];
}

macro_rules! choice {
    ($(#[$meta:meta])* $name:ident in $field:literal { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl Choice for $name {
            const FIELD: &'static str = $field;
            const VALUES: &'static [(&'static str, Self)] = &[$(($wire, Self::$variant)),+];
        }
    };
}

choice! {
    /// What a write returns of the item it changed.
    ReturnValues in "ReturnValues" {
        None = "NONE",
        AllOld = "ALL_OLD",
        UpdatedOld = "UPDATED_OLD",
        AllNew = "ALL_NEW",
        UpdatedNew = "UPDATED_NEW",
    }
}

choice! {
    /// Whether a failed condition returns the item it was evaluated on.
    ReturnOnFailure in "ReturnValuesOnConditionCheckFailure" {
        AllOld = "ALL_OLD",
        None = "NONE",
    }
}

choice! {
    /// How much of the capacity a request consumed is reported.
    ReturnCapacity in "ReturnConsumedCapacity" {
        Indexes = "INDEXES",
        Total = "TOTAL",
        None = "NONE",
    }
}

choice! {
    /// Whether a write reports the size of its item collection.
    ReturnCollectionMetrics in "ReturnItemCollectionMetrics" {
        Size = "SIZE",
        None = "NONE",
    }
}

choice! {
    /// What a Query or Scan returns of each item.
    Select in "Select" {
        AllAttributes = "ALL_ATTRIBUTES",
        AllProjectedAttributes = "ALL_PROJECTED_ATTRIBUTES",
        SpecificAttributes = "SPECIFIC_ATTRIBUTES",
        Count = "COUNT",
    }
}

choice! {
    /// How the legacy `Expected`, `QueryFilter` and `ScanFilter` entries
    /// combine.
    ConditionalOperator in "ConditionalOperator" {
        And = "AND",
        Or = "OR",
    }
}

/// A value's wire name.
pub fn wire<T: Choice + PartialEq>(value: T) -> &'static str {
    T::VALUES
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("", |(w, _)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_wire_name() {
        for (w, v) in ReturnValues::VALUES {
            assert_eq!(wire(*v), *w);
        }
        assert_eq!(wire(Select::Count), "COUNT");
        assert_eq!(wire(ReturnCapacity::Indexes), "INDEXES");
    }
}
