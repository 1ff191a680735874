-- Frame of suite `simulated_lenses`: one row per simulated training lens with its host's split and
-- label in training_manifest (null when the host is not a training sample) and whether its file is
-- in the store (one listing of the store).
with

store_files as (

    select file from glob($cutout_root || '/**')

),

lenses as (

    select
        simulated_lenses.*,
        case
            when
                simulated_lenses.cutout_path like '/%' or simulated_lenses.cutout_path like 's3://%'
                then simulated_lenses.cutout_path
            else $cutout_root || '/' || simulated_lenses.cutout_path
        end as cutout_uri
    from simulated_lenses

)

select
    lenses.sample_id,
    lenses.split,
    lenses.label,
    lenses.theta_e_arcsec,
    lenses.arc_snr,
    host_samples.split as host_split,
    host_samples.label as host_label,
    store_files.file is not null as file_present
from lenses
left join training_manifest as host_samples on host_samples.sample_id = lenses.host_sample_id
left join store_files on store_files.file = lenses.cutout_uri
