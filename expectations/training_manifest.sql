-- Frame of suite `training_manifest`: one row per training sample with the number of splits its
-- galaxy appears in, its weight split by class (null where it does not apply), and whether its
-- cutout is recorded as stored and the file is present in the store (one listing of the store).
with

store_files as (

    select file from glob($cutout_root || '/**')

),

manifest as (

    select
        training_manifest.*,
        case
            when
                training_manifest.cutout_path like '/%' or training_manifest.cutout_path like 's3://%'
                then training_manifest.cutout_path
            else $cutout_root || '/' || training_manifest.cutout_path
        end as cutout_uri
    from training_manifest

)

select
    manifest.sample_id,
    manifest.split,
    manifest.label,
    manifest.target,
    count(distinct manifest.split) over (partition by manifest.galaxy_id) as n_splits_of_galaxy,
    case when manifest.tier = 'A' then manifest.sample_weight end as weight_tier_a,
    case when manifest.tier = 'B' then manifest.sample_weight end as weight_tier_b,
    case when manifest.label = 0 then manifest.sample_weight end as weight_negative,
    cutouts.status = 'ok' and cutouts.sha256 = manifest.cutout_sha256 as cutout_recorded,
    store_files.file is not null as cutout_file_present
from manifest
left join cutouts on cutouts.sample_id = manifest.sample_id
left join store_files on store_files.file = manifest.cutout_uri
