-- The hosts of the simulated training lenses: every negative of the train split that training may
-- use, with the PSF and depth the arc renderer needs, in a seeded hash order (the renderer takes
-- them in this order, one arc each, until it has finder_simulated_lenses). Train split only: a
-- simulated lens must never share a galaxy with validation, test or the injection hosts.

with

screened as (

    select * from {{ ref('int_training_samples_screened') }}

),

cutout_manifest as (

    select * from {{ ref('cutout_manifest') }}

),

train_negatives as (

    select
        sample_id,
        galaxy_id,
        cutout_path,
        cutout_sha256
    from screened
    where
        exclusion_reason is null
        and label = 0
        and split = 'train'

),

with_psf as (

    select
        train_negatives.sample_id,
        train_negatives.galaxy_id,
        train_negatives.cutout_path,
        train_negatives.cutout_sha256,
        cutout_manifest.psfsize_g,
        cutout_manifest.psfsize_r,
        cutout_manifest.psfsize_z,
        cutout_manifest.psfdepth_r
    from train_negatives
    inner join cutout_manifest on cutout_manifest.sample_id = train_negatives.sample_id
    where
        cutout_manifest.psfsize_g > 0
        and cutout_manifest.psfsize_r > 0
        and cutout_manifest.psfsize_z > 0
        and cutout_manifest.psfdepth_r > 0

),

final as (

    select
        *,
        row_number() over (
            order by md5(sample_id || ':' || '{{ var("finder_simulated_seed") }}'), sample_id
        ) as host_rank
    from with_psf

)

select * from final
