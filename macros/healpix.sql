{#-
  HEALPix NESTED pixel index from (ra, dec) in degrees, as one plain-SQL expression.

  Why SQL and not a Python UDF: sky-region splits and crossmatch zones are computed over billions of
  sweep rows, so the index has to run inside the engine, on DuckDB now and Spark SQL later. Why bit
  for bit equal to healpy: the train/val/test split is keyed on these pixels, and a row that lands in
  another pixel than the Python tooling computes would leak across the split.

  The arithmetic replays what healpy 1.20 runs (its ufunc builds a `pointing`, calls normalize(),
  then Healpix_cxx healpix_base.h `ang2pix` and healpix_base.cc `loc2pix`, NEST branch) in float64,
  so every rounding matches:
    theta = (90 - dec) * (pi/180), phi = ra * (pi/180)       numpy's np.radians, same factor
    phi = fmodulo(phi, 2pi)       (normalize(); theta in [0, pi] is left as it is)
    z = cos(theta); sin(theta) where theta < 0.01 or theta > 3.14159 - 0.01   (`have_sth`)
    tt = fmodulo(phi * inv_halfpi, 4)
    |z| <= 2/3: jp/jm = floor(n*(0.5+tt) -/+ n*(z*0.75)), face from (jp >> order, jm >> order)
    else:       tmp = n*sqrt(3*(1-|z|)) or n*sin(theta)/sqrt((1+|z|)/3);
                jp/jm = floor(tp*tmp) / floor((1-tp)*tmp) (< n), face = floor(tt) (+8 south)
    xyf2nest: face << 2*order | bits of ix at even and of iy at odd positions.
  Rewrites used below, each exact in IEEE double (n is a power of two, so scaling by it commutes
  with rounding): n*a + n*b = n*(a+b); (n*x)/y = n*(x/y); floor(n*s) >> order = floor(s).

  Why the expression has this shape:
  - No name can be bound inside one SQL expression, so a part used k times is written k times.
    DuckDB's common-subexpression pass evaluates repeated parts once per row, but only parts that
    are not inside a CASE branch (CASE and AND/OR short-circuit). The polar/equatorial choice is
    therefore an arithmetic blend, eq * (equatorial value) + polar * (polar value), where eq and
    polar are 0/1 doubles; both values are finite for every row, so the blend is exact.
  - The text of ix and iy is repeated once per 6-bit chunk of the bit interleave
    (healpix_spread_bits), so the SQL stays within 3-30 kB (for plain column names) and DuckDB plans
    it in tens of milliseconds.
  - Constants are float literals in exponent form (DOUBLE in DuckDB and Spark) holding the shortest
    repr of the C++ double; a plain decimal literal would be a DECIMAL.
  - floor() of non-negative values replaces the C++ int truncation; CAST(double AS BIGINT) rounds in
    DuckDB and is applied only to values that are already integers.
  Measured with DuckDB 1.4.4, one thread, 4M uniform points, on a shared 2-core machine: about
  115 ns/row at nside 1, 200-240 ns/row at nside 64 to 2**16, 300 ns/row at 2**29, against 22 ns/row
  for cos(radians(x)) alone and 50-70 ns/point for healpy itself; planning takes 10-60 ms.
  tests/test_healpix_sql.py holds the comparisons with healpy.
-#}

{% macro healpix_max_order() -%}
  {#- Largest HEALPix order whose NESTED index fits a signed 64-bit integer (Healpix_cxx order_max).
      A macro, not a top-level set: dbt reads only the macro blocks of a macro file. -#}
  29
{%- endmacro %}


{% macro healpix_compile_error(message) -%}
  {#- Fail loudly on a bad macro argument. Under dbt, `exceptions` exists and compilation stops with
      the message; rendered by plain Jinja (tests, notebooks) it becomes an SQL error() call, so the
      query fails with the same message when it runs instead of returning wrong pixels. -#}
  {%- if exceptions is defined -%}
    {%- do exceptions.raise_compiler_error(message) -%}
  {%- else -%}
    error('{{ message | replace("'", "''") }}')
  {%- endif -%}
{%- endmacro %}


{% macro healpix_order_of(nside) -%}
  {#- log2(nside) when nside is a power of two from 1 to 2**29, else empty. A loop rather than
      int.bit_length(), so it also runs in dbt's sandboxed Jinja. -#}
  {%- for order in range(healpix_max_order() | int + 1) if 2 ** order == nside -%}{{ order }}{%- endfor -%}
{%- endmacro %}


{% macro healpix_nside_problem(nside, macro_name) -%}
  {#- Empty when nside is valid for NESTED numbering, else the message to raise, naming the macro and
      the fix. Separate so every caller validates before it builds any SQL. -#}
  {%- set max_order = healpix_max_order() | int -%}
  {%- if nside is not integer -%}
    {%- set shown = ("'" ~ nside ~ "'" if nside is string else nside | string) | truncate(40) -%}
    {{- macro_name ~ ': nside must be a Jinja integer, a power of two from 1 to 2**' ~ max_order ~ ', got '
        ~ shown ~ ", which is not an integer; pass e.g. 1024, or var('nside') | int" -}}
  {%- elif (healpix_order_of(nside) | trim) == '' -%}
    {{- macro_name ~ ': nside must be a power of two from 1 to 2**' ~ max_order ~ ' (' ~ 2 ** max_order
        ~ '), got ' ~ nside ~ '; NESTED numbering needs nside = 2**order' -}}
  {%- endif -%}
{%- endmacro %}


{% macro healpix_spread_bits(value, nbits) -%}
  {#- SQL expression moving bit b < nbits of the BIGINT `value` to bit 2*b and dropping all higher
      bits (two's complement: only value & (2**nbits - 1) counts). This is the "spread" half of the
      NESTED (Morton) interleave, done per 6-bit chunk c with one multiply, one mask and one modulo,
      so `value` is written once per chunk (a shift/or ladder writes it twice per stage, 2**5 times
      for 29 bits):
        ((c * 36591884444901378) & 54045394820169732) % 2047
      The multiplier puts copies of c at bits 55, 1, 13, 25, 37, 49, each at least 6 bits apart, so
      the product has no carries and stays below 2**61. The mask keeps bit i of the i-th copy, at
      position p_i with p_i = 2*i (mod 11). Since 2**11 = 1 (mod 2047), the modulo sends bit p_i to
      bit 2*i, and the sum (at most 1365) is below 2047, so no bits collide. Every step is exact BIGINT
      arithmetic without overflow (DuckDB raises on overflow; Spark would wrap). -#}
  {%- set chunks = [] -%}
  {%- for start in range(0, nbits, 6) -%}
    {%- set width = [6, nbits - start] | min -%}
    {%- set chunk = '(' ~ value ~ (' >> ' ~ start if start else '') ~ ')' -%}
    {%- set spread = '((((' ~ chunk ~ ' & ' ~ (2 ** width - 1) ~ ') * 36591884444901378)'
                     ~ ' & 54045394820169732) % 2047)' -%}
    {%- do chunks.append('(' ~ spread ~ ' << ' ~ (2 * start) ~ ')' if start else spread) -%}
  {%- endfor -%}
  {%- if chunks -%}({{ chunks | join(' | ') }}){%- else -%}cast(0 as bigint){%- endif -%}
{%- endmacro %}


{% macro healpix_nest(ra, dec, nside) -%}
  {#- BIGINT NESTED HEALPix index of (ra, dec) in degrees at `nside`, equal bit for bit to
      healpy.ang2pix(nside, np.radians(90 - dec), np.radians(ra), nest=True). `ra`, `dec`: SQL
      expressions (cast to DOUBLE here); `nside`: Jinja integer, a power of two from 1 to 2**29.
      NULL when ra or dec is NULL, NaN or infinite, and when |dec| > 90 (healpy raises there); any
      other ra is reduced modulo 360 exactly as healpy reduces phi. -#}
  {%- set problem = healpix_nside_problem(nside, 'healpix_nest') | trim -%}
  {%- if problem -%}
    {{ healpix_compile_error(problem) }}
  {%- else -%}
    {#- float64 constants of Healpix_cxx and numpy, as shortest round-trip repr -#}
    {%- set deg2rad = '1.7453292519943295e-2' -%}  {#- np.pi / 180, numpy's radians factor -#}
    {%- set inv_halfpi = '6.366197723675814e-1' -%}  {#- Healpix_cxx inv_halfpi -#}
    {%- set twopi = '6.283185307179586e0' -%}  {#- Healpix_cxx twopi -#}
    {%- set twothird = '6.666666666666666e-1' -%}  {#- Healpix_cxx twothird = 2.0/3.0 -#}
    {%- set sth_theta_lo = '1e-2' -%}  {#- ang2pix: theta < 0.01 uses sin(theta) -#}
    {%- set sth_theta_hi = '3.13159e0' -%}  {#- ang2pix: theta > 3.14159-0.01, as a C++ double -#}
    {%- set max_double = '1.7976931348623157e308' -%}  {#- largest finite double -#}
    {%- set order = healpix_order_of(nside) | int -%}
    {%- set n = nside ~ 'e0' -%}
    {%- set m = (nside - 1) ~ 'e0' -%}

    {#- Angles. Invalid input becomes NULL before anything can fail on it: the dec guard keeps
        cos() away from +-inf (DuckDB raises), and the ra guard sits in the region flag, which
        multiplies every value that is later cast to BIGINT (a NaN cast would raise). -#}
    {%- set theta = '((9e1 - case when abs(' ~ dec ~ ') <= 9e1 then cast(' ~ dec ~ ' as double) end) * '
                    ~ deg2rad ~ ')' -%}
    {%- set z = 'cos(' ~ theta ~ ')' -%}
    {%- set za = 'abs(' ~ z ~ ')' -%}
    {#- healpy normalises the pointing first: phi = fmodulo(phi, twopi), i.e. fmod(phi, 2pi) and,
        when that is negative, + 2pi rounded once, a result of exactly 2pi becoming 0. In SQL
        r = phi % 2pi is that fmod (exact) and ceil(-r/8) is 1 for r < 0, else 0. The 2pi -> 0 step
        needs no code of its own: 2pi * inv_halfpi is exactly 4, which tt = fmodulo(phi * inv_halfpi,
        4) -- a plain % 4 on a value in [0, 4] -- sends to 0, as it does phi = 0. -#}
    {%- set r = '((cast(' ~ ra ~ ' as double) * ' ~ deg2rad ~ ') % ' ~ twopi ~ ')' -%}
    {%- set phi = '(' ~ r ~ ' + ' ~ twopi ~ ' * ceil(-' ~ r ~ ' * 1.25e-1))' -%}
    {%- set tt = '((' ~ phi ~ ' * ' ~ inv_halfpi ~ ') % 4e0)' -%}

    {#- Region flags as 0/1 doubles: polar = ceil(|z| - 2/3) is 1 exactly when |z| > 2/3; in the
        caps, ceil(z/2) is 1 in the north and -0 in the south (ceil(z) would be -1 at z = -1). -#}
    {%- set polar = 'ceil(case when abs(' ~ ra ~ ') <= ' ~ max_double ~ ' then ' ~ za ~ ' end - '
                    ~ twothird ~ ')' -%}
    {%- set eq = '(1e0 - ' ~ polar ~ ')' -%}
    {%- set north = 'ceil(' ~ z ~ ' * 5e-1)' -%}

    {#- Equatorial belt: jp = floor(n*s), jm = floor(n*t); face from ifp = jp >> order = floor(s) and
        ifm = floor(t), where ifp | 4 = 4 + ifp % 4 (ifp <= 5). -#}
    {%- set a = '(5e-1 + ' ~ tt ~ ')' -%}
    {%- set b = '(' ~ z ~ ' * 7.5e-1)' -%}
    {%- set s = '(' ~ a ~ ' - ' ~ b ~ ')' -%}
    {%- set t = '(' ~ a ~ ' + ' ~ b ~ ')' -%}
    {%- set ifp = 'floor(' ~ s ~ ')' -%}
    {%- set ifm = 'floor(' ~ t ~ ')' -%}
    {%- set face_eq = '(case when ' ~ ifp ~ ' = ' ~ ifm ~ ' then 4e0 + ' ~ ifp ~ ' % 4e0 when ' ~ ifp ~ ' < '
                      ~ ifm ~ ' then ' ~ ifp ~ ' else ' ~ ifm ~ ' + 8e0 end)' -%}
    {#- ix = jm & (n-1) and iy = n-1 - (jp & (n-1)) = (n-1 - jp) & (n-1): the & is left to
        healpix_spread_bits, which reads only the low `order` bits (two's complement). -#}
    {%- set ix_eq = 'floor(' ~ n ~ ' * ' ~ t ~ ')' -%}
    {%- set iy_eq = '(' ~ m ~ ' - floor(' ~ n ~ ' * ' ~ s ~ '))' -%}

    {#- Polar caps: w = tmp / n. North: ix = n-1-jm, iy = n-1-jp; south: ix = jp, iy = jm; with
        |north - tp| = 1-tp (north) or tp (south), the same double Healpix_cxx multiplies by tmp.
        Two Healpix_cxx steps cannot act on ang2pix input and are left out: have_sth implies
        |z| > cos(0.01) > 0.99, so the extra (za < 0.99) test never overrides it; and the clamp
        jp, jm <= n-1 never binds, since |z| >= 2/3 + ulp gives 3*(1-|z|) <= 1 - 2ulp, so w < 1 and
        n*(q*w) < n for q <= 1 (and the sin branch only runs for theta < 0.01, where w < 0.02). -#}
    {%- set ft = 'floor(' ~ tt ~ ')' -%}
    {%- set tp = '(' ~ tt ~ ' - ' ~ ft ~ ')' -%}
    {#- (theta - 0.01) * (theta - 3.13159) > 0 is exactly "theta < 0.01 or theta > 3.13159": the
        factors carry the exact signs and their product cannot underflow. One comparison, no OR. -#}
    {%- set w = '(case when (' ~ theta ~ ' - ' ~ sth_theta_lo ~ ') * (' ~ theta ~ ' - ' ~ sth_theta_hi
                ~ ') > 0e0 then sin(' ~ theta ~ ') / sqrt((1e0 + ' ~ za ~ ') / 3e0)'
                ~ ' else sqrt(3e0 * (1e0 - ' ~ za ~ ')) end)' -%}
    {%- set px = '(abs(' ~ north ~ ' - ' ~ tp ~ ') * ' ~ w ~ ')' -%}
    {%- set py = '(abs((1e0 - ' ~ north ~ ') - ' ~ tp ~ ') * ' ~ w ~ ')' -%}
    {%- set ix_cap = 'abs(' ~ north ~ ' * ' ~ m ~ ' - floor(' ~ n ~ ' * ' ~ px ~ '))' -%}
    {%- set iy_cap = 'abs(' ~ north ~ ' * ' ~ m ~ ' - floor(' ~ n ~ ' * ' ~ py ~ '))' -%}
    {%- set face_cap = '(' ~ ft ~ ' + 8e0 * (1e0 - ' ~ north ~ '))' -%}

    {%- set face = 'cast(' ~ eq ~ ' * ' ~ face_eq ~ ' + ' ~ polar ~ ' * ' ~ face_cap ~ ' as bigint)' -%}
    {%- set ix = 'cast(' ~ eq ~ ' * ' ~ ix_eq ~ ' + ' ~ polar ~ ' * ' ~ ix_cap ~ ' as bigint)' -%}
    {%- set iy = 'cast(' ~ eq ~ ' * ' ~ iy_eq ~ ' + ' ~ polar ~ ' * ' ~ iy_cap ~ ' as bigint)' -%}
    (({{ face }} << {{ 2 * order }})
     | {{ healpix_spread_bits(ix, order) }}
     | ({{ healpix_spread_bits(iy, order) }} << 1))
  {%- endif -%}
{%- endmacro %}
