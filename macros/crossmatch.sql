{#-
  On-sky crossmatch in portable SQL with the zones algorithm (Gray, Nieto-Santisteban & Szalay 2006).

  Why this shape: an equi-join on the zone alone is quadratic inside a zone (a 3" zone around the sky
  holds ~40K DR10 objects), so the hash key is a cell (zone, RA bucket), numbered as one BIGINT, a few
  times the size of the search window. Each right row lands in exactly one cell; each left row is
  expanded only to the cells its window [dec +- r] x [ra +- alpha] touches (about
  (1 + 2 / cell_factor)^2 cells), so the planner hash-joins ~2N probe rows against N build rows.
  The dec window is part of the hash join (a range condition evaluated per hash match, before any
  row is materialised); the RA window and the exact unit-vector distance are filters after it.
  The left side is the expanded one: put the smaller relation on the left (5K candidates x 20M
  sweep rows costs ~1.3 s of CPU that way round, ~5 s the other way round).

  Zones are cell_factor * r high. alpha and the bucket count are computed once per zone (as in Gray
  et al., alpha at the zone's largest |dec|) in a small table of the zones the left windows touch
  (zx__zones), and unit vectors only for candidate pairs, so no input row of either side pays for
  trigonometry: on 10M-100M rows that is most of the cost.

  RA is treated modulo 360 (buckets wrap, the RA window uses the modular difference), so no visitor
  copies are needed and any RA convention works. Near a pole (the circle contains it) alpha is 180
  and the zone has one or two buckets. Every prefilter is widened by `window_margin` (relative) so
  that rounding in a prefilter can never drop a pair: only |v1 - v2|^2 <= 4 sin^2(r/2) decides.
  The separation is 2 asin(chord / 2), stable for tiny separations (unlike acos of a dot product).

  Rows with dec outside [-90, 90] or ra outside [-360, 720] (NaN, infinity and null included) never
  match: coordinates are validated upstream (validate_sweeps), and such a row must not abort the
  query with a cast error either.

  Plain Jinja plus dbt's exceptions.raise_compiler_error (emulated by tests/sqlmacros.py), so tests
  render it without dbt. Portable SQL: floor, cast, %, sqrt, sin, cos, atan, asin, radians, degrees,
  power, greatest/least, abs, VALUES lists, window functions -- no range/unnest.
-#}

{#- Fail rendering with `message` (dbt's compilation error; tests/sqlmacros.py emulates it). -#}
{% macro _zx_raise(message) -%}
    {{- exceptions.raise_compiler_error(message) -}}
{%- endmacro %}

{#- A float as a SQL DOUBLE literal. Exponent notation keeps DuckDB and Spark from typing it as a
    DECIMAL (which would round the radius); 17 significant digits round-trip exactly. -#}
{% macro _zx_num(value) -%}
    {{- '%.17e' | format(value | float) -}}
{%- endmacro %}

{#- alpha(r, dec) in degrees, the half-width in RA of the circle of radius r centred at dec:
    atan(|sin r| / sqrt(|cos(dec - r) cos(dec + r)|)); 180 when the circle contains a pole. -#}
{% macro _zx_alpha(dec_sql, r_deg) -%}
    case
        when abs({{ dec_sql }}) + {{ _zx_num(r_deg) }} >= 90 then 180.0
        else degrees(atan(
            abs(sin(radians({{ _zx_num(r_deg) }})))
            / sqrt(abs(cos(radians(abs({{ dec_sql }}) - {{ _zx_num(r_deg) }}))
                       * cos(radians(abs({{ dec_sql }}) + {{ _zx_num(r_deg) }}))))
        ))
    end
{%- endmacro %}

{#- alpha of a zone, as in Gray et al.: alpha(r_pad, D) where D, the largest |dec| within r_pad of
    the zone's edges, bounds |dec| of every left row whose window touches the zone. alpha grows with
    |dec|, so it is an RA window valid for all of them; it costs one evaluation per zone instead of
    trigonometry on each of 10M-100M left rows, and is wider than the row's own alpha by only
    ~zone_height * tan(dec) (relative). -#}
{% macro _zx_zone_alpha(zone_sql, r_pad, zone_height) -%}
    {%- set d_max = "least(90.0, greatest(abs(cast(" ~ zone_sql ~ " as double) * " ~ _zx_num(zone_height)
        ~ " - " ~ _zx_num(90 + r_pad) ~ "), abs(cast(" ~ zone_sql ~ " + 1 as double) * "
        ~ _zx_num(zone_height) ~ " - " ~ _zx_num(90 - r_pad) ~ ")))" -%}
    {{ _zx_alpha(d_max, r_pad) }}
{%- endmacro %}

{#- Zone range [zone_lo, zone_hi] touched by the window dec +- r_pad. One macro for both places that
    need it, so zx__zone_ids and zx__left_window get bit-identical zones. -#}
{% macro _zx_zone_of(dec_sql, offset, zone_height) -%}
    cast(floor(({{ dec_sql }} + {{ _zx_num(90 + offset) }}) / {{ _zx_num(zone_height) }}) as bigint)
{%- endmacro %}

{#- Rows the crossmatch can place on the sphere (see the header); NaN fails BETWEEN in DuckDB/Spark. -#}
{% macro _zx_valid(ra_sql, dec_sql) -%}
    ({{ dec_sql }}) between -90 and 90 and ({{ ra_sql }}) between -360 and 720
{%- endmacro %}

{#- `(VALUES (0), (1), ..., (count - 1)) AS zx__<column>(<column>)`: neighbour offsets, generated
    without range/unnest so the SQL stays portable. -#}
{% macro _zx_offsets(count, column) -%}
    (values {% for i in range(count) %}({{ i }}){{ ", " if not loop.last }}{% endfor %}) as zx__{{ column }}({{ column }})
{%- endmacro %}

{#- Cell of a point at RA `ra_sql` in a zone whose zx__zones row is aliased `z`: cell_base plus the
    RA bucket, wrapped modulo n_buckets so any RA convention (0..360, -180..180, 360 itself) works. -#}
{% macro _zx_cell_of(ra_sql) -%}
    z.cell_base + (cast(floor({{ ra_sql }} * z.buckets_per_deg) as bigint) % z.n_buckets + z.n_buckets) % z.n_buckets
{%- endmacro %}

{#- Shared body of zones_pairs / zones_nearest: a WITH clause ending in CTE `zx__pairs`
    (l_id, r_id, d2) where d2 is the squared chord, already cut at the radius. -#}
{% macro _zx_pairs_cte(macro_name, left, right, left_id, right_id, radius_arcsec, left_ra, left_dec,
                       right_ra, right_dec, exclude_self, cell_factor, window_margin) -%}
    {%- if radius_arcsec is not number or radius_arcsec is boolean
          or not (0 < radius_arcsec < 648000) -%}
        {{- _zx_raise(macro_name ~ ": radius_arcsec must be a number in (0, 648000) arcsec, got '"
            ~ radius_arcsec ~ "'. Pass the radius as a Jinja number, e.g. 1.0 or 11.") -}}
    {%- endif -%}
    {%- if cell_factor is not number or cell_factor is boolean or cell_factor < 1 -%}
        {{- _zx_raise(macro_name ~ ": cell_factor must be a number >= 1 (cell size in units of the "
            ~ "search window), got '" ~ cell_factor ~ "'.") -}}
    {%- endif -%}
    {%- if window_margin is not number or window_margin is boolean or not (0 < window_margin < 0.01) -%}
        {{- _zx_raise(macro_name ~ ": window_margin must be a small positive relative margin in "
            ~ "(0, 0.01), got '" ~ window_margin ~ "'.") -}}
    {%- endif -%}
    {%- if exclude_self is not boolean -%}
        {{- _zx_raise(macro_name ~ ": exclude_self must be true or false, got '" ~ exclude_self ~ "'.") -}}
    {%- endif -%}
    {%- set r_deg = radius_arcsec / 3600.0 -%}
    {%- set r_pad = r_deg * (1 + window_margin) -%}
    {%- set zone_height = cell_factor * r_deg -%}
    {#- An interval of length L touches at most floor(L / width) + 2 cells: L = 2 r_pad for zones of
        height h; L = 2 alpha <= 2 (360 / n) / cell_factor for buckets (+ margin for rounding). -#}
    {%- set n_zone_offsets = (2 * r_pad / zone_height) | int + 2 -%}
    {%- set n_bucket_offsets = (2 * (1 + window_margin) / cell_factor) | int + 2 -%}
    {%- set max_zones = ((180 + 2 * r_pad) / zone_height) | int + 2 -%}
    with
    zx__zone_ids as (
        -- every zone some left window touches: the only zones that need buckets or right rows
        select distinct zx__lz.zone_lo + zx__dz.dz as zone
        from (
            select
                {{ _zx_zone_of("cast(" ~ left_dec ~ " as double)", -r_pad, zone_height) }} as zone_lo,
                {{ _zx_zone_of("cast(" ~ left_dec ~ " as double)", r_pad, zone_height) }} as zone_hi
            from {{ left }}
            where {{ _zx_valid(left_ra, left_dec) }}
        ) as zx__lz
        cross join {{ _zx_offsets(n_zone_offsets, "dz") }}
        where zx__lz.zone_lo + zx__dz.dz <= zx__lz.zone_hi
        -- never truncates (valid decs span fewer zones); it tells the planner this relation is small,
        -- so it builds its hash tables on the zones rather than on a 100M-row right side
        limit {{ max_zones }}
    ),
    zx__zones as (
        -- per zone: its RA window alpha; n_buckets RA buckets of width 360 / n >= cell_factor * alpha,
        -- so a window touches at most floor(2 / cell_factor) + 2 of them; and the id of its first
        -- cell, numbering cells densely: cell = cell_base + bucket is a single BIGINT join key
        select
            zone,
            alpha,
            n_buckets,
            cast(n_buckets as double) / 360.0 as buckets_per_deg,
            -- a sum of BIGINTs is a HUGEINT in DuckDB: cast back, 128-bit join keys hash slowly
            cast(sum(n_buckets) over (order by zone) - n_buckets as bigint) as cell_base
        from (
            select
                zone,
                alpha,
                cast(greatest(1, floor(360.0 / ({{ _zx_num(cell_factor) }} * alpha))) as bigint) as n_buckets
            from (
                select zone, {{ _zx_zone_alpha("zone", r_pad, zone_height) }} as alpha
                from zx__zone_ids
            ) as zx__zone_alpha
        ) as zx__zone_sizes
    ),
    zx__left_window as (
        select
            {{ left_id }} as l_id,
            cast({{ left_ra }} as double) as l_ra,
            cast({{ left_dec }} as double) as l_dec,
            {{ _zx_zone_of("cast(" ~ left_dec ~ " as double)", -r_pad, zone_height) }} as zone_lo,
            {{ _zx_zone_of("cast(" ~ left_dec ~ " as double)", r_pad, zone_height) }} as zone_hi
        from {{ left }}
        where {{ _zx_valid(left_ra, left_dec) }}
    ),
    zx__left_ranges as (
        select
            w.l_id, w.l_ra, w.l_dec, z.alpha as l_alpha, z.n_buckets, z.cell_base,
            cast(floor((w.l_ra - z.alpha) * z.buckets_per_deg) as bigint) as bucket_lo,
            cast(floor((w.l_ra + z.alpha) * z.buckets_per_deg) as bigint) as bucket_hi
        from zx__left_window as w
        cross join {{ _zx_offsets(n_zone_offsets, "dz") }}
        inner join zx__zones as z
            on z.zone = w.zone_lo + zx__dz.dz
        where w.zone_lo + zx__dz.dz <= w.zone_hi
    ),
    zx__probe as (
        -- buckets wrap modulo n_buckets (RA wrap-around); fewer than n_buckets offsets, no repeats
        select
            p.l_id, p.l_ra, p.l_dec, p.l_alpha,
            p.l_dec - {{ _zx_num(r_pad) }} as l_dec_lo, p.l_dec + {{ _zx_num(r_pad) }} as l_dec_hi,
            p.cell_base + ((p.bucket_lo + zx__db.db) % p.n_buckets + p.n_buckets) % p.n_buckets as cell
        from zx__left_ranges as p
        cross join {{ _zx_offsets(n_bucket_offsets, "db") }}
        where zx__db.db <= least(p.bucket_hi - p.bucket_lo, p.n_buckets - 1)
    ),
    zx__right_cells as (
        -- the inner join also drops right rows in zones no left window touches
        select r.r_id, r.r_ra, r.r_dec, {{ _zx_cell_of("r.r_ra") }} as cell
        from (
            select
                {{ right_id }} as r_id,
                cast({{ right_ra }} as double) as r_ra,
                cast({{ right_dec }} as double) as r_dec
            from {{ right }}
            where {{ _zx_valid(right_ra, right_dec) }}
        ) as r
        inner join zx__zones as z
            on z.zone = {{ _zx_zone_of("r.r_dec", 0, zone_height) }}
    ),
    zx__candidates as (
        select
            p.l_id,
            r.r_id,
            -- unit vectors only for the few candidates: no trigonometry per input row on either side
            power(cos(radians(p.l_dec)) * cos(radians(p.l_ra)) - cos(radians(r.r_dec)) * cos(radians(r.r_ra)), 2)
                + power(cos(radians(p.l_dec)) * sin(radians(p.l_ra)) - cos(radians(r.r_dec)) * sin(radians(r.r_ra)), 2)
                + power(sin(radians(p.l_dec)) - sin(radians(r.r_dec)), 2) as d2
        from zx__probe as p
        inner join zx__right_cells as r
            on p.cell = r.cell
            and r.r_dec >= p.l_dec_lo
            and r.r_dec <= p.l_dec_hi
        where
            -- modular RA distance; for |dRA| > 360 (unnormalised input) the test passes: still safe
            (p.l_alpha >= 180 or least(abs(p.l_ra - r.r_ra), 360.0 - abs(p.l_ra - r.r_ra)) <= p.l_alpha)
            {%- if exclude_self %}
            and p.l_id <> r.r_id
            {%- endif %}
    ),
    zx__pairs as (
        select l_id, r_id, d2
        from zx__candidates
        where d2 <= power(2 * sin(radians({{ _zx_num(r_deg) }}) / 2), 2)
    )
{%- endmacro %}

{#- Separation in arcsec from the squared chord: 2 asin(chord / 2), clipped against rounding. -#}
{% macro _zx_sep_arcsec(d2_sql) -%}
    degrees(2 * asin(least(1.0, sqrt({{ d2_sql }}) / 2))) * 3600.0
{%- endmacro %}

{#- Every (left, right) pair within radius_arcsec: rows (l_id, r_id, sep_arcsec). -#}
{% macro zones_pairs(left, right, left_id, right_id, radius_arcsec, left_ra='ra', left_dec='dec',
                     right_ra='ra', right_dec='dec', exclude_self=false, cell_factor=4,
                     window_margin=1e-6) -%}
    {{ _zx_pairs_cte("zones_pairs", left, right, left_id, right_id, radius_arcsec, left_ra, left_dec,
                     right_ra, right_dec, exclude_self, cell_factor, window_margin) }}
    select l_id, r_id, {{ _zx_sep_arcsec("d2") }} as sep_arcsec
    from zx__pairs
{%- endmacro %}

{#- For each left row, its nearest right row within radius_arcsec (ties: smallest r_id), like
    astropy match_coordinates_sky cut at the radius: rows (l_id, r_id, sep_arcsec). left_id must be
    unique, since it is the grouping key. -#}
{% macro zones_nearest(left, right, left_id, right_id, radius_arcsec, left_ra='ra', left_dec='dec',
                       right_ra='ra', right_dec='dec', exclude_self=false, cell_factor=4,
                       window_margin=1e-6) -%}
    {{ _zx_pairs_cte("zones_nearest", left, right, left_id, right_id, radius_arcsec, left_ra, left_dec,
                     right_ra, right_dec, exclude_self, cell_factor, window_margin) }},
    zx__ranked as (
        select l_id, r_id, d2, row_number() over (partition by l_id order by d2, r_id) as zx__rank
        from zx__pairs
    )
    select l_id, r_id, {{ _zx_sep_arcsec("d2") }} as sep_arcsec
    from zx__ranked
    where zx__rank = 1
{%- endmacro %}
