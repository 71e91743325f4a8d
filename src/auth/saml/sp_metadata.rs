//! This SP's metadata for the IdP administrator: entity id, the ACS with
//! the HTTP-POST binding, NameID format emailAddress.

use super::metadata::escape;
use super::request::{EMAIL_NAME_ID, HTTP_POST_BINDING};

pub fn sp_metadata_xml(sp_entity_id: &str, acs_url: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>{EMAIL_NAME_ID}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{HTTP_POST_BINDING}" Location="{}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        escape(sp_entity_id),
        escape(acs_url)
    )
}
