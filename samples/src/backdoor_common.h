/* Shared by the backdoor samples: the ping-pong exchange the tests' plugin answers.
 *
 * For cmd = 1..n the guest writes a 64-byte pattern, pattern[i] = (cmd * 7 + i) & 0xff,
 * at data[0..63] and calls cmd. The host answers in the same window:
 *   data[64..71] = cmd * 1000003 + sum(pattern)   (uint64, guest byte order)
 *   data[72..79] = ~cmd
 * and the guest checks both. */
#include <stdio.h>
#include <stdint.h>
#include <string.h>

static int pingpong(void (*call)(uint64_t), uint8_t *data, int n)
{
    int ok = 0, bad = 0;
    for (int cmd = 1; cmd <= n; cmd++) {
        uint64_t sum = 0;
        for (int i = 0; i < 64; i++) {
            data[i] = (uint8_t)(cmd * 7 + i);
            sum += data[i];
        }
        memset(data + 64, 0, 16);
        call((uint64_t)cmd);
        uint64_t answer, inverse;
        memcpy(&answer, data + 64, 8);
        memcpy(&inverse, data + 72, 8);
        if (answer == (uint64_t)cmd * 1000003u + sum && inverse == ~(uint64_t)cmd)
            ok++;
        else if (bad++ < 3)
            printf("bad answer for cmd %d: %llu %llx\n", cmd, (unsigned long long)answer,
                   (unsigned long long)inverse);
    }
    printf("pingpong: calls=%d ok=%d bad=%d\n", n, ok, bad);
    return bad != 0;
}
