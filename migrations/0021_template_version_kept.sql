-- A (template name, version) names one definition forever, so instances may cache parsed
-- versions for their lifetime: a template deleted because no task referenced it keeps its
-- versions, and a template created again under the same name continues their numbering
-- (store::template::upsert) instead of starting again at 1 with another definition.
ALTER TABLE template_version DROP CONSTRAINT template_version_name_fkey;
