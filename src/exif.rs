//! Placeholder until the EXIF reader lands.
pub fn extract(_path: &std::path::Path, _mime: &str) -> serde_yaml::Mapping {
    serde_yaml::Mapping::new()
}
