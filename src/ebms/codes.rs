//! The ebMS 3.0 / AS4 error codes as one typed table.
//!
//! Short descriptions, severities and categories follow the specification text (ebMS3 Core
//! §6.7.1–6.7.3, AS4 §3.6; digest §2.6), not phase4's enum, which deviates in four places
//! (EBMS:0005 severity, EBMS:0011 category, the spelling of 0003 and of 0008).

use std::fmt;
use std::str::FromStr;

/// `eb:Error/@severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Warning,
    Failure,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Failure => "failure",
        }
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "warning" => Ok(Severity::Warning),
            "failure" => Ok(Severity::Failure),
            _ => Err(()),
        }
    }
}

/// `eb:Error/@category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Content,
    Communication,
    Unpackaging,
    Processing,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Content => "Content",
            Category::Communication => "Communication",
            Category::Unpackaging => "Unpackaging",
            Category::Processing => "Processing",
        }
    }
}

/// `eb:Error/@origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Ebms,
    Security,
    Reliability,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Ebms => "ebMS",
            Origin::Security => "security",
            Origin::Reliability => "reliability",
        }
    }
}

macro_rules! ebms_codes {
    ($( $variant:ident = $code:literal, $short:literal, $sev:ident, $cat:ident, $origin:ident, $meaning:literal; )*) => {
        /// Every ebMS 3.0 / AS4 error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EbmsCode {
            $( #[doc = $meaning] $variant, )*
        }

        impl EbmsCode {
            /// All codes, in numeric order.
            pub const ALL: &'static [EbmsCode] = &[$(EbmsCode::$variant),*];

            /// The wire form, e.g. `EBMS:0004`.
            pub fn code(self) -> &'static str {
                match self { $(EbmsCode::$variant => $code,)* }
            }
            /// `@shortDescription` exactly as the specification spells it.
            pub fn short_description(self) -> &'static str {
                match self { $(EbmsCode::$variant => $short,)* }
            }
            /// Default `@severity`.
            pub fn severity(self) -> Severity {
                match self { $(EbmsCode::$variant => Severity::$sev,)* }
            }
            /// `@category`.
            pub fn category(self) -> Category {
                match self { $(EbmsCode::$variant => Category::$cat,)* }
            }
            /// `@origin` this code is reported under.
            pub fn origin(self) -> Origin {
                match self { $(EbmsCode::$variant => Origin::$origin,)* }
            }
            /// One-line meaning for operators.
            pub fn meaning(self) -> &'static str {
                match self { $(EbmsCode::$variant => $meaning,)* }
            }
        }
    };
}

ebms_codes! {
    ValueNotRecognized = "EBMS:0001", "ValueNotRecognized", Failure, Content, Ebms,
        "Element or attribute value not recognized (e.g. unknown Service/Action/AgreementRef).";
    FeatureNotSupported = "EBMS:0002", "FeatureNotSupported", Warning, Content, Ebms,
        "Element or attribute value requires a feature the receiving MSH does not support.";
    ValueInconsistent = "EBMS:0003", "ValueInconsistent", Failure, Content, Ebms,
        "Value inconsistent with other values, the P-Mode or the specification.";
    Other = "EBMS:0004", "Other", Failure, Content, Ebms,
        "Other error.";
    ConnectionFailure = "EBMS:0005", "ConnectionFailure", Failure, Communication, Ebms,
        "The MSH cannot open a transport connection to the remote MSH.";
    EmptyMessagePartitionChannel = "EBMS:0006", "EmptyMessagePartitionChannel", Warning, Communication, Ebms,
        "No message available for pulling from this MPC.";
    MimeInconsistency = "EBMS:0007", "MimeInconsistency", Failure, Unpackaging, Ebms,
        "MIME usage not as required by the ebMS specification.";
    FeatureNotSupportedUnpackaging = "EBMS:0008", "FeatureNotSupported", Failure, Unpackaging, Ebms,
        "Presence or absence of an element or attribute is not consistent with the MSH's capabilities.";
    InvalidHeader = "EBMS:0009", "InvalidHeader", Failure, Unpackaging, Ebms,
        "The ebMS header is not well-formed or breaks the packaging rules.";
    ProcessingModeMismatch = "EBMS:0010", "ProcessingModeMismatch", Failure, Processing, Ebms,
        "The ebMS header or a related header is incompatible with the P-Mode.";
    ExternalPayloadError = "EBMS:0011", "ExternalPayloadError", Failure, Content, Ebms,
        "An external payload reference could not be resolved.";
    FailedAuthentication = "EBMS:0101", "FailedAuthentication", Failure, Processing, Security,
        "The signature in the Security header could not be validated.";
    FailedDecryption = "EBMS:0102", "FailedDecryption", Failure, Processing, Security,
        "The encrypted data could not be decrypted.";
    PolicyNoncompliance = "EBMS:0103", "PolicyNoncompliance", Failure, Processing, Security,
        "The processor determined that the message's security methods, parameters, scope or other security policy-level requirements or agreements were not satisfied.";
    DysfunctionalReliability = "EBMS:0201", "DysfunctionalReliability", Failure, Processing, Reliability,
        "Some reliability function as implemented by the reliability module is not operational.";
    DeliveryFailure = "EBMS:0202", "DeliveryFailure", Failure, Communication, Reliability,
        "Delivery of the message could not be assured.";
    MissingReceipt = "EBMS:0301", "MissingReceipt", Failure, Communication, Ebms,
        "A Receipt has not been received for a message that was previously sent.";
    InvalidReceipt = "EBMS:0302", "InvalidReceipt", Failure, Communication, Ebms,
        "A Receipt has been received but its content does not match the sent message.";
    DecompressionFailure = "EBMS:0303", "DecompressionFailure", Failure, Communication, Ebms,
        "An error occurred while decompressing a payload.";
}

impl fmt::Display for EbmsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.short_description())
    }
}

impl FromStr for EbmsCode {
    type Err = ();
    /// Parses the wire form (`EBMS:0004`).
    fn from_str(s: &str) -> Result<Self, ()> {
        EbmsCode::ALL
            .iter()
            .copied()
            .find(|c| c.code() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_exact() {
        let codes: Vec<&str> = EbmsCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(
            codes,
            [
                "EBMS:0001",
                "EBMS:0002",
                "EBMS:0003",
                "EBMS:0004",
                "EBMS:0005",
                "EBMS:0006",
                "EBMS:0007",
                "EBMS:0008",
                "EBMS:0009",
                "EBMS:0010",
                "EBMS:0011",
                "EBMS:0101",
                "EBMS:0102",
                "EBMS:0103",
                "EBMS:0201",
                "EBMS:0202",
                "EBMS:0301",
                "EBMS:0302",
                "EBMS:0303"
            ]
        );
        // Where phase4 deviates, the specification wins (digest §2.6).
        assert_eq!(EbmsCode::ConnectionFailure.severity(), Severity::Failure);
        assert_eq!(EbmsCode::ExternalPayloadError.category(), Category::Content);
        assert_eq!(
            EbmsCode::ValueInconsistent.short_description(),
            "ValueInconsistent"
        );
        assert_eq!(
            EbmsCode::FeatureNotSupportedUnpackaging.short_description(),
            "FeatureNotSupported"
        );
        assert_eq!(EbmsCode::FeatureNotSupported.severity(), Severity::Warning);
        assert_eq!(
            EbmsCode::EmptyMessagePartitionChannel.severity(),
            Severity::Warning
        );
        assert_eq!(
            "EBMS:0303".parse::<EbmsCode>(),
            Ok(EbmsCode::DecompressionFailure)
        );
    }
}
