-- Which samples get cutouts, with everything a cutout source needs -- position, Tractor parameters
-- for the synthetic renderer and the Legacy Survey URL: matched positives plus their strata's
-- negatives (the content-keyed store path is derived in cutout_manifest, which every cutouts
-- build rebuilds, so it always follows the build's own render/fetch vars). The cutouts
-- wing starts here (cutout_manifest projects it, int_cutout_neighbour_pairs reads its centres);
-- it reads the catalogue's intermediates, not its marts, so the DAG flows one way.
-- cutout_max_positives limits the run to a deterministic subset of positives (lowest sha256 of
-- candidate_id and cutout_seed) and, in each of their strata, cutout_negatives_per_positive
-- negatives per chosen positive (lowest sample_hash first: a random subset of the stratum's sampled
-- negatives, so N1 and every N2 category keep their share).

{%- set max_positives = var('cutout_max_positives', none) %}

with

positives as (

    select * from {{ ref('int_positives_stratified') }}
    where is_matched

),

negatives as (

    select
        galaxy_id,
        n2_category,
        split,
        sampled_for_stratum as stratum,
        sample_hash
    from {{ ref('int_negatives_sampled') }}

),

sweeps as (

    select * from {{ ref('stg_dr10__sweeps') }}

),

ranked_positives as (

    select
        *,
        row_number() over (
            order by {{ sha256_unit_interval("candidate_id || '_" ~ var('cutout_seed') ~ "'") }}, candidate_id
        ) as subset_rank

    from positives

),

chosen_positives as (

    select * from ranked_positives
    {%- if max_positives is not none %}
        where subset_rank <= {{ max_positives }}
    {%- endif %}

),

wanted_negatives as (

    select
        stratum,
        count(*) * {{ var('cutout_negatives_per_positive') }} as n_wanted
    from chosen_positives
    group by stratum

),

chosen_negatives as (

    select negatives.*
    from (
        select
            *,
            row_number() over (partition by stratum order by sample_hash, galaxy_id) as stratum_rank
        from negatives
    ) as negatives
    inner join wanted_negatives on wanted_negatives.stratum = negatives.stratum
    {%- if max_positives is not none %}
        where negatives.stratum_rank <= wanted_negatives.n_wanted
    {%- endif %}

),

samples as (

    select
        galaxy_id,
        'positive' as label,
        true as is_lens,
        tier,
        null as n2_category,
        split,
        stratum
    from chosen_positives
    union all
    select
        galaxy_id,
        'negative' as label,
        false as is_lens,
        null as tier,
        n2_category,
        split,
        stratum
    from chosen_negatives

),

final as (

    select
        cast(samples.galaxy_id as varchar) as sample_id,
        samples.galaxy_id,
        samples.label,
        samples.is_lens,
        samples.tier,
        samples.n2_category,
        samples.split,
        samples.stratum,
        sweeps.ra,
        sweeps.dec,
        sweeps.type,
        sweeps.shape_r,
        sweeps.shape_e1,
        sweeps.shape_e2,
        sweeps.sersic,
        {%- for band in ['g', 'r', 'z'] %}
            sweeps.flux_{{ band }},
            sweeps.psfsize_{{ band }},
            sweeps.psfdepth_{{ band }},
        {%- endfor %}
        sweeps.flux_w1,
        sweeps.flux_w2,
        sweeps.nobs_z,
        {{ cutout_url('sweeps.ra', 'sweeps.dec') }} as cutout_url

    from samples
    inner join sweeps on sweeps.galaxy_id = samples.galaxy_id

)

select * from final
