/* The run encoder of `bdemu record` (bdemu/_native/__init__.py `RunEncoder`): block streams
 * from the trace stream (core.c) cut into loop runs, and those runs expanded into table rows.
 * Part of the same extension module as core.c; called through ctypes, with the GIL released. */
#include <stdint.h>

/* Same block, repeats and seq step at positions a and b of a block stream? */
static inline int same_step(const uint32_t *ids, const uint64_t *seqs, const uint32_t *repeats, uint64_t n,
                            uint64_t end, uint64_t a, uint64_t b)
{
    if (ids[a] != ids[b] || repeats[a] != repeats[b])
        return 0;
    uint64_t step_a = (a + 1 < n ? seqs[a + 1] : end) - seqs[a];
    uint64_t step_b = (b + 1 < n ? seqs[b + 1] : end) - seqs[b];
    return step_a == step_b;
}

#define MAX_PERIOD 1024

/* Cut the block stream ids/seqs/repeats[0..n) (`end`: the seq after its last event) into
 * runs: run k repeats the pattern of entries start[k] .. start[k]+len[k]-1 `reps[k]` times
 * from seq first[k], each repetition `span[k]` numbers after the previous one. Loops become
 * one run each; what does not repeat becomes runs of one repetition. An entry (block id, its
 * seq, how often it ran back to back) is matched whole. `last` is scratch, one entry per
 * block id, all set to UINT64_MAX. Returns the number of runs (at most n).
 */
uint64_t bd_encode_runs(const uint32_t *ids, const uint64_t *seqs, const uint32_t *repeats, uint64_t n,
                        uint64_t end, uint64_t *last,
                        uint64_t *start, uint64_t *len, uint64_t *reps, uint64_t *first, uint64_t *span)
{
    uint64_t runs = 0, literal = 0, i = 0;
    /* The last match measured: positions memo_end - m .. memo_end - 1 equal those `memo_period`
     * before them. A later position inside it with the same period needs no new scan, which
     * keeps a long near-repeat (an outer loop whose body changed a little) linear. */
    uint64_t memo_period = 0, memo_end = 0;
#define EMIT(p, d, r, f, sp) do { start[runs] = (p); len[runs] = (d); reps[runs] = (r); \
                                  first[runs] = (f); span[runs] = (sp); runs++; } while (0)
    while (i < n) {
        uint64_t j = last[ids[i]];
        last[ids[i]] = i;
        if (j != UINT64_MAX && i - j <= MAX_PERIOD) {
            uint64_t d = i - j, m = 0;
            if (d == memo_period && i < memo_end) {
                m = memo_end - i;  /* inside a match already measured with this period */
            } else {
                /* every step but the stream's last has its next seq in the array */
                while (i + m + 1 < n && ids[i + m] == ids[i + m - d] && repeats[i + m] == repeats[i + m - d]
                       && seqs[i + m + 1] - seqs[i + m] == seqs[i + m + 1 - d] - seqs[i + m - d])
                    m++;
                if (i + m + 1 == n && same_step(ids, seqs, repeats, n, end, i + m, i + m - d))
                    m++;
                memo_period = d;
                memo_end = i + m;
            }
            uint64_t r = m / d;
            /* A run costs a row per block of its pattern: worth it from two repetitions on. If the
             * pattern's first copy is still unwritten it joins the run; if not, the repeats alone
             * must be two or more (else this block is better left to a shorter loop inside it). */
            int fresh = i - literal >= d;
            if (r >= 2 || (r == 1 && fresh)) {
                uint64_t p = i - d, step = seqs[i] - seqs[p];
                if (fresh) {
                    if (p > literal)
                        EMIT(literal, p - literal, 1, seqs[literal], 0);
                    EMIT(p, d, r + 1, seqs[p], step);
                } else {
                    if (i > literal)
                        EMIT(literal, i - literal, 1, seqs[literal], 0);
                    EMIT(p, d, r, seqs[i], step);
                }
                i += r * d;
                for (uint64_t k = i - d; k < i; k++)
                    last[ids[k]] = k;
                literal = i;
                continue;
            }
        }
        i++;
    }
    if (n > literal)
        EMIT(literal, n - literal, 1, seqs[literal], 0);
    for (uint64_t k = 0; k < n; k++)
        last[ids[k]] = UINT64_MAX;
#undef EMIT
    return runs;
}

/* The rows of runs start/len/reps/first/span[0..nruns) (from bd_encode_runs) of the stream
 * ids/seqs/repeats. Entry e of run k is block b = ids[e] run back to back c = repeats[e]
 * times, strides[b] numbers apart (1 if strides is NULL), from seq first[k] + seqs[e] -
 * seqs[start[k]], and again every span[k] numbers, reps[k] times in all. An entry run once
 * becomes a step row (seq, id); any other one row per repetition of the smaller kind:
 * c rows (seq + i*stride, reps, span, id) if c <= reps, else reps rows (seq + i*span, c,
 * stride, id). Adds every execution to executions[b]. Each output has room for `cap` rows
 * (the stream's length is enough: a run of reps x len entries covers that many positions).
 * Returns the number of run rows and sets *nsteps, or returns UINT64_MAX if `cap` is short.
 */
uint64_t bd_expand_runs(const uint32_t *ids, const uint64_t *seqs, const uint32_t *repeats, const uint32_t *strides,
                        uint64_t nruns, const uint64_t *start, const uint64_t *len, const uint64_t *reps,
                        const uint64_t *first, const uint64_t *span, uint64_t *executions, uint64_t cap,
                        uint64_t *step_seq, uint32_t *step_id, uint64_t *nsteps,
                        uint64_t *run_seq, int64_t *run_reps, uint64_t *run_span, uint32_t *run_id)
{
    uint64_t steps = 0, rows = 0;
    for (uint64_t k = 0; k < nruns; k++) {
        uint64_t base = seqs[start[k]], r = reps[k], sp = span[k];
        for (uint64_t e = start[k]; e < start[k] + len[k]; e++) {
            uint32_t b = ids[e];
            uint64_t c = repeats[e], seq = first[k] + (seqs[e] - base), stride = strides ? strides[b] : 1;
            executions[b] += r * c;
            if (r == 1 && c == 1) {
                if (steps >= cap)
                    return UINT64_MAX;
                step_seq[steps] = seq;
                step_id[steps++] = b;
                continue;
            }
            int inner = c <= r && r > 1;
            uint64_t copies = inner ? c : r, apart = inner ? stride : sp;
            if (copies > cap - rows)
                return UINT64_MAX;
            for (uint64_t i = 0; i < copies; i++, rows++) {
                run_seq[rows] = seq + i * apart;
                run_reps[rows] = (int64_t)(inner ? r : c);
                run_span[rows] = inner ? sp : stride;
                run_id[rows] = b;
            }
        }
    }
    *nsteps = steps;
    return rows;
}
