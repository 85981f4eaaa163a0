import { describe, expect, it } from 'vitest';
import { builtPackage, runCli } from './run-cli.js';

const built = builtPackage();

function row(stdout: string, name: string): string | undefined {
  return new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(stdout)?.[1];
}

describe('webhook-outbox demo', () => {
  it('replays the incident with a SIGKILLed producer and prints 0 lost', async () => {
    const result = await runCli(built.cli, ['demo', '--events', '400', '--rate', '400', '--phase', '600ms', '--capacity', '4', '--quiet']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(row(result.stdout, 'sent')).toBe('400');
    expect(row(result.stdout, 'delivered')).toBe('400');
    expect(row(result.stdout, 'lost')).toBe('0');
    expect(row(result.stdout, 'kills')).toBe('1');
    expect(row(result.stdout, 'signatures')).toBe('all');
    expect(Number(row(result.stdout, 'attempts'))).toBeGreaterThan(400);
    expect(Number(row(result.stdout, 'peak'))).toBeGreaterThan(0);
    expect(result.stdout).toContain('0 lost: every one of the 400 events was delivered.');
  });

  it('exits non-zero and counts the lost events when delivery cannot finish in time', async () => {
    const result = await runCli(built.cli, ['demo', '--events', '200', '--rate', '400', '--phase', '20s', '--timeout', '1500ms', '--kill-at', '0', '--quiet']);
    expect(result.code).toBe(1);
    const lost = Number(row(result.stdout, 'lost'));
    expect(lost).toBeGreaterThan(0);
    expect(lost).toBe(Number(row(result.stdout, 'sent')) - Number(row(result.stdout, 'delivered')));
    expect(result.stdout).toContain(`${lost} lost:`);
    expect(row(result.stdout, 'kills')).toBe('0');
  });
});
