//! MIME multipart/related (SOAP with Attachments): streaming parser and writer, with limits.
