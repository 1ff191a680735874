-- Stage 2 of the sampling: strata still short of N1 after stage 1 (n1_deficit) are topped up
-- with spare N1 galaxies -- never N2 -- of the same split and type from the strata nearest in bins:
-- distance 1 (one bin step in one stratify_by dimension) first, up to
-- sampling_topup_max_bin_distance. At each distance, each donor stratum's spare galaxies (hash
-- order) are cut into consecutive slices for the short strata next to it (stratum order); a short
-- stratum keeps what it needs, lowest donor stratum key first, and a second pass at the same
-- distance hands out what the first left over. Whatever is still missing is a shortfall that
-- sampling_strata records. One row per galaxy taken: the stratum it tops up and the distance.
-- The pass CTEs are materialized: each reads the previous pass's spare and remaining strata twice,
-- which inlined would re-run the whole chain per reference.

{%- set max_distance = var('sampling_topup_max_bin_distance') %}
{#- two passes per distance: 1, 1, 2, 2, ... #}
{%- set steps = [] %}
{%- for d in range(1, max_distance + 1) %}
    {%- do steps.append(d) %}
    {%- do steps.append(d) %}
{%- endfor %}

with

plan as (

    select * from {{ ref('int_sampling_strata_planned') }}

),

pool as (

    select
        galaxy_id,
        split,
        type_bin,
        stratum,
        bin_indices,
        sample_hash,
        is_n2
    from {{ ref('int_negative_pool') }}

),

drawn as (

    select galaxy_id from {{ ref('int_negatives_drawn') }}

),

short_bins as (

    select distinct
        split,
        type_bin
    from plan
    where n1_deficit > 0

),

spare_0 as {{ cte_materialized() }} (

    select
        pool.galaxy_id,
        pool.split,
        pool.type_bin,
        pool.stratum,
        pool.bin_indices,
        pool.sample_hash
    from pool
    semi join short_bins
        on short_bins.split = pool.split and short_bins.type_bin = pool.type_bin
    anti join drawn on drawn.galaxy_id = pool.galaxy_id
    where not pool.is_n2

),

remaining_0 as {{ cte_materialized() }} (

    select
        stratum,
        split,
        type_bin,
        bin_indices,
        n1_deficit as remaining
    from plan
    where n1_deficit > 0

),

taken_0 as (

    select
        cast(null as bigint) as galaxy_id,
        cast(null as string) as receiver,
        cast(null as integer) as topup_distance
    where false

),
-- noqa: disable=LT02
{%- for d in steps %}
{%- set k = loop.index %}

donors_{{ k }} as (

    select distinct
        stratum,
        split,
        type_bin,
        bin_indices
    from spare_{{ k - 1 }}

),

links_{{ k }} as (

    select
        donors_{{ k }}.stratum as donor,
        remaining_{{ k - 1 }}.stratum as receiver,
        remaining_{{ k - 1 }}.remaining,
        sum(remaining_{{ k - 1 }}.remaining) over (
            partition by donors_{{ k }}.stratum order by remaining_{{ k - 1 }}.stratum
        ) as slice_end

    from remaining_{{ k - 1 }}
    inner join donors_{{ k }}
        on donors_{{ k }}.split = remaining_{{ k - 1 }}.split
            and donors_{{ k }}.type_bin = remaining_{{ k - 1 }}.type_bin
            and {{ bin_distance('donors_' ~ k ~ '.bin_indices', 'remaining_' ~ (k - 1) ~ '.bin_indices') }} = {{ d }}

),

ranked_spare_{{ k }} as (

    select
        spare_{{ k - 1 }}.galaxy_id,
        spare_{{ k - 1 }}.stratum,
        spare_{{ k - 1 }}.sample_hash,
        row_number() over (
            partition by spare_{{ k - 1 }}.stratum order by spare_{{ k - 1 }}.sample_hash, spare_{{ k - 1 }}.galaxy_id
        ) as spare_rank
    from spare_{{ k - 1 }}
    semi join links_{{ k }} on links_{{ k }}.donor = spare_{{ k - 1 }}.stratum

),

offered_{{ k }} as (

    select
        ranked_spare_{{ k }}.galaxy_id,
        links_{{ k }}.receiver,
        row_number() over (
            partition by links_{{ k }}.receiver
            order by links_{{ k }}.donor, ranked_spare_{{ k }}.sample_hash, ranked_spare_{{ k }}.galaxy_id
        ) as receiver_rank,
        links_{{ k }}.remaining

    from ranked_spare_{{ k }}
    inner join links_{{ k }}
        on links_{{ k }}.donor = ranked_spare_{{ k }}.stratum
            and ranked_spare_{{ k }}.spare_rank > links_{{ k }}.slice_end - links_{{ k }}.remaining
            and ranked_spare_{{ k }}.spare_rank <= links_{{ k }}.slice_end

),

taken_{{ k }} as {{ cte_materialized() }} (

    select
        galaxy_id,
        receiver,
        {{ d }} as topup_distance
    from offered_{{ k }}
    where receiver_rank <= remaining

),

remaining_{{ k }} as {{ cte_materialized() }} (

    select
        remaining_{{ k - 1 }}.stratum,
        remaining_{{ k - 1 }}.split,
        remaining_{{ k - 1 }}.type_bin,
        remaining_{{ k - 1 }}.bin_indices,
        remaining_{{ k - 1 }}.remaining - count(taken_{{ k }}.galaxy_id) as remaining
    from remaining_{{ k - 1 }}
    left join taken_{{ k }} on taken_{{ k }}.receiver = remaining_{{ k - 1 }}.stratum
    group by
        remaining_{{ k - 1 }}.stratum,
        remaining_{{ k - 1 }}.split,
        remaining_{{ k - 1 }}.type_bin,
        remaining_{{ k - 1 }}.bin_indices,
        remaining_{{ k - 1 }}.remaining
    having remaining_{{ k - 1 }}.remaining - count(taken_{{ k }}.galaxy_id) > 0

),

spare_{{ k }} as {{ cte_materialized() }} (

    select spare_{{ k - 1 }}.* from spare_{{ k - 1 }}
    anti join taken_{{ k }} on taken_{{ k }}.galaxy_id = spare_{{ k - 1 }}.galaxy_id

),
{%- endfor %}

taken as (

    {%- for k in range(steps | length + 1) %}
    select * from taken_{{ k }}
    {{ "union all" if not loop.last }}
    {%- endfor %}

),
-- noqa: enable=LT02

final as (

    select
        galaxy_id,
        receiver as sampled_for_stratum,
        topup_distance
    from taken

)

select * from final
